// The CloudWatch dashboard of the stack, as template.yaml's `Dashboard` declares it: the body
// is a CloudFormation `Fn::Sub` string, with ${Function}, ${FunctionLogGroup}, ${TraceApi} and
// ${AWS::Region} resolved at deploy time. scripts/compare-templates parses both bodies and
// fails when they differ; scripts/render-dashboard draws it for docs/.

/** Metrics that carry the Tenant dimension (src/metrics.rs PER_TENANT) and are searched per tenant. */
const perTenant = (metric: string, stat: string, id: string) => [
  [
    {
      expression: `SEARCH('{M365TraceToDevo,Api,FunctionName,Tenant} MetricName="${metric}" FunctionName="\${Function}"', '${stat}', 300)`,
      id,
    },
  ],
];

const metricWidget = (
  x: number,
  y: number,
  width: number,
  title: string,
  stat: string,
  metrics: unknown[],
  yAxisLeft: Record<string, unknown>,
) => ({
  type: 'metric',
  x,
  y,
  width,
  height: 6,
  properties: { title, region: '${AWS::Region}', view: 'timeSeries', stat, period: 300, metrics, yAxis: { left: yAxisLeft } },
});

/** The dashboard's widgets, in template.yaml's order. */
export function dashboardWidgets(): unknown[] {
  const seconds = { label: 'seconds', showUnits: false, min: 0 };
  const counts = { showUnits: false, min: 0 };
  return [
    metricWidget(0, 0, 12, 'Lag per tenant (LagSeconds, worst in 5 min)', 'Maximum', perTenant('LagSeconds', 'Maximum', 'lag'), seconds),
    metricWidget(
      12,
      0,
      12,
      'Fresh lag per tenant (FreshLagSeconds, worst in 5 min)',
      'Maximum',
      perTenant('FreshLagSeconds', 'Maximum', 'fresh'),
      seconds,
    ),
    metricWidget(
      0,
      6,
      8,
      'Events sent to Devo',
      'Sum',
      [['M365TraceToDevo', 'EventsSent', 'FunctionName', '${Function}', 'Api', '${TraceApi}', { label: 'events sent' }]],
      counts,
    ),
    metricWidget(8, 6, 8, 'Failed ticks per tenant (TickFailed)', 'Sum', perTenant('TickFailed', 'Sum', 'failed'), counts),
    metricWidget(
      16,
      6,
      8,
      'Throttled requests',
      'Sum',
      [
        ['M365TraceToDevo', 'ThrottledRequests', 'FunctionName', '${Function}', 'Api', '${TraceApi}', { label: 'Microsoft 429s (ThrottledRequests)' }],
        [
          'M365TraceToDevo',
          'QuotaContention',
          'FunctionName',
          '${Function}',
          'Api',
          '${TraceApi}',
          { label: '429s while under our budget: another app spends the quota (QuotaContention)' },
        ],
        ['AWS/Lambda', 'Throttles', 'FunctionName', '${Function}', { label: 'ticks queued by Lambda (Throttles)' }],
      ],
      counts,
    ),
    metricWidget(
      0,
      12,
      12,
      'Delivery details (DetailsSent, DetailsQueued)',
      'Sum',
      [
        ['M365TraceToDevo', 'DetailsSent', 'FunctionName', '${Function}', 'Api', '${TraceApi}', { label: 'detail lines sent (DetailsSent)' }],
        [
          'M365TraceToDevo',
          'DetailsQueued',
          'FunctionName',
          '${Function}',
          'Api',
          '${TraceApi}',
          { label: 'deliveries waiting for details, most in 5 min (DetailsQueued)', stat: 'Maximum' },
        ],
      ],
      counts,
    ),
    metricWidget(
      12,
      12,
      12,
      'Scheduled audit (AuditMissing, AuditExtra)',
      'Sum',
      [
        ['M365TraceToDevo', 'AuditMissing', 'FunctionName', '${Function}', 'Api', '${TraceApi}', { label: 'records Devo lacks (AuditMissing)' }],
        [
          'M365TraceToDevo',
          'AuditExtra',
          'FunctionName',
          '${Function}',
          'Api',
          '${TraceApi}',
          { label: 'records in Devo that Microsoft does not list (AuditExtra)' },
        ],
      ],
      counts,
    ),
    {
      type: 'log',
      x: 0,
      y: 18,
      width: 24,
      height: 6,
      properties: {
        title: 'Tenants by lag (their last finished tick)',
        region: '${AWS::Region}',
        view: 'table',
        query:
          "SOURCE '${FunctionLogGroup}' | filter event = \"summary\" and ispresent(lag_seconds) | stats latest(lag_seconds) as lag_s, latest(checkpoint) as checkpoint, latest(@timestamp) as last_tick by tenant | sort lag_s desc | limit 200",
      },
    },
  ];
}

/** The body, to be passed to Fn.sub. */
export function dashboardBody(): string {
  return JSON.stringify({ widgets: dashboardWidgets() });
}
