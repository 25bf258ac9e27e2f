// Security and shape properties of the CDK stack, proven on the synthesized template.
// Synth only: the real RustFunction is used, with bundling skipped for every stack
// (context aws:cdk:bundling-stacks = []), so neither Docker, a Rust cross-build, AWS
// credentials nor the network is needed.
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import {
  DEFAULT_FRESH_DELAY_SECONDS,
  DEFAULT_FRESH_LAG_ALARM_THRESHOLD_SECONDS,
  DEFAULT_LAG_ALARM_THRESHOLD_SECONDS,
  LEDGER_EXPIRATION_DAYS,
  LEDGER_TAG,
  M365TraceToDevoStack,
  M365TraceToDevoStackProps,
  MEMORY_MB,
  METRICS_NAMESPACE,
  STATE_KEY,
  TIMEOUT_SECONDS,
} from '../lib/stack';

type Json = any; // eslint-disable-line @typescript-eslint/no-explicit-any

let template: Template;
let raw: Json;

beforeAll(() => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new M365TraceToDevoStack(app, 'TestStack', { stackName: 'm365-trace-to-devo-test' });
  template = Template.fromStack(stack);
  raw = template.toJSON();
});

function resourcesOfType(type: string): [string, Json][] {
  return Object.entries(raw.Resources as Record<string, Json>).filter(([, r]) => r.Type === type);
}

function allPolicyStatements(): Json[] {
  const statements: Json[] = [];
  for (const [, role] of resourcesOfType('AWS::IAM::Role')) {
    for (const p of role.Properties.Policies ?? []) statements.push(...p.PolicyDocument.Statement);
  }
  for (const [, policy] of resourcesOfType('AWS::IAM::Policy')) {
    statements.push(...policy.Properties.PolicyDocument.Statement);
  }
  return statements;
}

const asList = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);

describe('function', () => {
  test('provided.al2023 on arm64, handler bootstrap, chosen memory and timeout', () => {
    template.resourceCountIs('AWS::Lambda::Function', 1);
    template.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'provided.al2023',
      Architectures: ['arm64'],
      Handler: 'bootstrap',
      MemorySize: MEMORY_MB,
      Timeout: TIMEOUT_SECONDS,
    });
    expect(MEMORY_MB).toBe(256);
  });

  test('reserved concurrency is the MaxConcurrentTicks parameter, 10 by default', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: { Ref: 'MaxConcurrentTicks' } });
    expect(raw.Parameters.MaxConcurrentTicks).toMatchObject({ Type: 'Number', Default: 10, MinValue: 1, MaxValue: 1000 });
  });

  test('the timeout is shorter than the default schedule period, so ticks do not overlap', () => {
    const expr: string = raw.Parameters.ScheduleExpression.Default;
    const m = /^rate\((\d+) minutes?\)$/.exec(expr);
    expect(m).not.toBeNull();
    expect(TIMEOUT_SECONDS).toBeLessThan(Number(m![1]) * 60);
  });

  test('environment: the contract variables, and nothing that is for tests only', () => {
    const [, fn] = resourcesOfType('AWS::Lambda::Function')[0];
    const vars = fn.Properties.Environment.Variables;
    expect(Object.keys(vars).sort()).toEqual(
      [
        'AUDIT_HOURS',
        'CLOUD',
        'DELAY_SECONDS',
        'DETAIL_STATUSES',
        'DETAIL_TAG',
        'DEVO_ADDRESS',
        'DEVO_QUERY_URL',
        'FRESH_DELAY_SECONDS',
        'DEVO_TAG',
        'HISTORIC_DAYS',
        'LOG_LEVEL',
        'MAX_WINDOW_SECONDS',
        'PAGE_SIZE',
        'RESET_BEFORE',
        'SECRET_ID',
        'STATE_BUCKET',
        'STATE_KEY',
        'STATUS_TAG',
        'TENANT_METRICS',
        'TENANTS_KEY',
        'TRACE_API',
      ].sort(),
    );
    expect(vars.STATE_KEY).toBe(STATE_KEY);
    expect(vars.FRESH_DELAY_SECONDS).toEqual({ Ref: 'FreshDelaySeconds' });
    expect(vars.STATE_KEY.startsWith('m365-message-trace/')).toBe(true);
    expect(vars.STATE_BUCKET).toEqual({ Ref: 'StateBucket' });
    expect(vars.SECRET_ID).toEqual({ 'Fn::If': ['CreateSecret', { Ref: 'Secret' }, { Ref: 'ExistingSecretArn' }] });
    // RESET_BEFORE is only set when the parameter is not empty.
    expect(vars.RESET_BEFORE).toEqual({ 'Fn::If': ['HasResetBefore', { Ref: 'ResetBefore' }, { Ref: 'AWS::NoValue' }] });
    for (const testOnly of ['LOGIN_URL', 'GRAPH_URL', 'REPORTING_URL', 'AWS_ENDPOINT_URL']) {
      expect(vars[testOnly]).toBeUndefined();
    }
  });

  test('scheduled invocations are not retried and do not queue for long', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', {
      FunctionName: { Ref: 'Function' },
      MaximumRetryAttempts: 0,
      MaximumEventAgeInSeconds: 300,
    });
  });

  test('logs go to its own log group, with a retention', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { LoggingConfig: { LogGroup: { Ref: 'FunctionLogGroup' } } });
    template.hasResourceProperties('AWS::Logs::LogGroup', { RetentionInDays: { Ref: 'LogRetentionDays' } });
    expect(raw.Parameters.LogRetentionDays.Default).toBeDefined();
  });

  test('the function is not in a VPC and has no dead-letter or X-Ray permissions to grant', () => {
    const [, fn] = resourcesOfType('AWS::Lambda::Function')[0];
    expect(fn.Properties.VpcConfig).toBeUndefined();
    expect(fn.Properties.DeadLetterConfig).toBeUndefined();
  });
});

describe('role: least privilege', () => {
  test('one role, assumable by Lambda only, no managed policies, a separate policy only for many tenants', () => {
    template.resourceCountIs('AWS::IAM::Role', 1);
    template.resourceCountIs('AWS::IAM::Policy', 1);
    expect(raw.Resources.TenantsPolicy.Condition).toBe('HasTenants');
    expect(resourcesOfType('AWS::IAM::Policy').map(([id]) => id)).toEqual(['TenantsPolicy']);
    template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const [, role] = resourcesOfType('AWS::IAM::Role')[0];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
    template.hasResourceProperties('AWS::Lambda::Function', { Role: { 'Fn::GetAtt': ['FunctionRole', 'Arn'] } });
  });

  test('exactly the five statements: logs, checkpoint objects, ledger objects, prefix listing, one secret', () => {
    const statements = allPolicyStatements().filter((s) => !['InvokeItself', 'ReadTenantSecrets'].includes(s.Sid));
    expect(statements.map((s) => s.Sid).sort()).toEqual(
      ['CheckpointListForNotFound', 'CheckpointObjects', 'LedgerObjects', 'Logs', 'ReadCredentials'].sort(),
    );
    for (const s of statements) expect(s.Effect).toBe('Allow');
  });

  test('S3: GetObject/PutObject on the checkpoint prefix only', () => {
    const s = allPolicyStatements().find((x) => x.Sid === 'CheckpointObjects');
    expect(asList(s.Action).sort()).toEqual(['s3:GetObject', 's3:PutObject']);
    expect(s.Resource).toEqual({
      'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/m365-message-trace/*']],
    });
  });

  test('S3: DeleteObject and PutObjectTagging on the ledger directories only (one tenant and the tenants)', () => {
    const s = allPolicyStatements().find((x) => x.Sid === 'LedgerObjects');
    expect(asList(s.Action).sort()).toEqual(['s3:DeleteObject', 's3:PutObjectTagging']);
    expect(asList(s.Resource)).toEqual([
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/m365-message-trace/ledger/*']] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['StateBucket', 'Arn'] }, '/m365-message-trace/tenants/*/ledger/*']] },
    ]);
    // Nothing else may delete: the checkpoints are only ever replaced with conditional PUTs.
    for (const other of allPolicyStatements().filter((x) => x.Sid !== 'LedgerObjects')) {
      expect(asList(other.Action)).not.toContain('s3:DeleteObject');
    }
  });

  test('S3: ListBucket (for 404 on a missing checkpoint) limited to the prefix', () => {
    const s = allPolicyStatements().find((x) => x.Sid === 'CheckpointListForNotFound');
    expect(s.Action).toBe('s3:ListBucket');
    expect(s.Resource).toEqual({ 'Fn::GetAtt': ['StateBucket', 'Arn'] });
    expect(s.Condition).toEqual({ StringLike: { 's3:prefix': 'm365-message-trace/*' } });
  });

  test('Secrets Manager: GetSecretValue on that secret only', () => {
    const s = allPolicyStatements().find((x) => x.Sid === 'ReadCredentials');
    expect(s.Action).toBe('secretsmanager:GetSecretValue');
    expect(s.Resource).toEqual({ 'Fn::If': ['CreateSecret', { Ref: 'Secret' }, { Ref: 'ExistingSecretArn' }] });
  });

  test('logs: stream + events on its own log group only (no CreateLogGroup)', () => {
    const s = allPolicyStatements().find((x) => x.Sid === 'Logs');
    expect(asList(s.Action).sort()).toEqual(['logs:CreateLogStream', 'logs:PutLogEvents']);
    expect(s.Resource).toEqual({ 'Fn::GetAtt': ['FunctionLogGroup', 'Arn'] });
  });

  test('no wildcard action and no "*" resource anywhere', () => {
    for (const s of allPolicyStatements()) {
      for (const action of asList(s.Action)) {
        expect(action).not.toBe('*');
        expect(action).not.toMatch(/:\*$/);
      }
      for (const resource of asList(s.Resource)) {
        expect(resource).not.toBe('*');
        expect(JSON.stringify(resource)).not.toMatch(/"arn:[^"]*:\*"/);
      }
    }
  });

  test('every S3 and Secrets Manager grant names a resource of this stack', () => {
    for (const s of allPolicyStatements()) {
      const services = new Set(asList(s.Action).map((a: string) => a.split(':')[0]));
      if (services.has('s3')) expect(JSON.stringify(s.Resource)).toContain('StateBucket');
      // The stack's secret, or (many tenants) the tenant secrets' name prefix.
      if (services.has('secretsmanager')) expect(JSON.stringify(s.Resource)).toMatch(/Secret|:secret:m365-trace-to-devo\/\*/);
    }
  });
});

describe('state bucket', () => {
  test('encrypted, private, versioned, owner-enforced, retained', () => {
    template.resourceCountIs('AWS::S3::Bucket', 1);
    template.hasResource('AWS::S3::Bucket', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
      Properties: {
        BucketEncryption: {
          ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
        },
        PublicAccessBlockConfiguration: {
          BlockPublicAcls: true,
          BlockPublicPolicy: true,
          IgnorePublicAcls: true,
          RestrictPublicBuckets: true,
        },
        VersioningConfiguration: { Status: 'Enabled' },
        OwnershipControls: { Rules: [{ ObjectOwnership: 'BucketOwnerEnforced' }] },
      },
    });
  });

  test('old checkpoint versions expire', () => {
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          Match.objectLike({ Status: 'Enabled', NoncurrentVersionExpiration: { NoncurrentDays: 30 } }),
        ]),
      },
    });
  });

  test('ledger objects left behind expire after 3 days, selected by the tag the function writes', () => {
    expect(LEDGER_TAG).toEqual({ key: 'm365-trace-to-devo', value: 'ledger' });
    expect(LEDGER_EXPIRATION_DAYS).toBe(3);
    template.hasResourceProperties('AWS::S3::Bucket', {
      LifecycleConfiguration: {
        Rules: Match.arrayWith([
          {
            Id: 'expire-ledger-objects',
            Status: 'Enabled',
            Prefix: 'm365-message-trace/',
            TagFilters: [{ Key: 'm365-trace-to-devo', Value: 'ledger' }],
            ExpirationInDays: 3,
            NoncurrentVersionExpiration: { NoncurrentDays: 1 },
          },
        ]),
      },
    });
    // No rule expires current objects without the tag: the checkpoints must never expire.
    const [, bucket] = resourcesOfType('AWS::S3::Bucket')[0];
    for (const rule of bucket.Properties.LifecycleConfiguration.Rules) {
      if (rule.ExpirationInDays !== undefined) expect(rule.TagFilters).toEqual([{ Key: 'm365-trace-to-devo', Value: 'ledger' }]);
    }
  });

  test('the bucket policy denies any request not made over TLS', () => {
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      Bucket: { Ref: 'StateBucket' },
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Deny',
            Action: 's3:*',
            Principal: { AWS: '*' },
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        ]),
      },
    });
    // ... and allows nothing.
    const [, policy] = resourcesOfType('AWS::S3::BucketPolicy')[0];
    for (const s of policy.Properties.PolicyDocument.Statement) expect(s.Effect).toBe('Deny');
  });
});

describe('secret', () => {
  test('created only without an existing ARN, and holding a placeholder, never credentials', () => {
    template.resourceCountIs('AWS::SecretsManager::Secret', 1);
    const [, secret] = resourcesOfType('AWS::SecretsManager::Secret')[0];
    expect(secret.Condition).toBe('CreateSecret');
    expect(raw.Conditions.CreateSecret).toEqual({ 'Fn::Equals': [{ Ref: 'ExistingSecretArn' }, ''] });
    const value = JSON.parse(secret.Properties.SecretString);
    expect(Object.keys(value)).toEqual(['placeholder']);
    for (const key of ['tenant_id', 'client_id', 'client_secret', 'devo_key_pem', 'client_private_key_pem']) {
      expect(secret.Properties.SecretString).not.toContain(key);
    }
    expect(raw.Parameters.ExistingSecretArn.Default).toBe('');
  });
});

describe('schedule', () => {
  test('an EventBridge rule with the ScheduleExpression parameter (default every 5 minutes) targets the function', () => {
    expect(raw.Parameters.ScheduleExpression.Default).toBe('rate(5 minutes)');
    template.hasResourceProperties('AWS::Events::Rule', {
      ScheduleExpression: { Ref: 'ScheduleExpression' },
      State: 'ENABLED',
      Targets: [Match.objectLike({ Arn: { 'Fn::GetAtt': ['Function', 'Arn'] } })],
    });
  });

  test('only EventBridge, from that rule, may invoke the function', () => {
    template.resourceCountIs('AWS::Lambda::Permission', 1);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      Principal: 'events.amazonaws.com',
      SourceArn: { 'Fn::GetAtt': ['FunctionTick', 'Arn'] },
    });
    template.resourceCountIs('AWS::Lambda::Url', 0);
  });
});

describe('parameters, alarms and outputs', () => {
  test('the same parameters and defaults as template.yaml', () => {
    const params = raw.Parameters;
    expect(params.DevoAddress.Default).toBe('collector-us.devo.io:443');
    expect(params.DevoTag.Default).toBe('cloud.office365.messagetracing');
    expect(params.TraceApi.AllowedValues).toEqual(['graph', 'reporting']);
    expect(params.Cloud.AllowedValues).toEqual(['global', 'gcc', 'gcc-high', 'dod', 'china']);
    expect(params.DelaySeconds.Default).toBe(90000);
    expect(params.FreshDelaySeconds).toMatchObject({ Type: 'Number', Default: 600, MinValue: 0, MaxValue: 2592000 });
    expect(DEFAULT_FRESH_DELAY_SECONDS).toBe(600);
    expect(params.HistoricDays.Default).toBe(10);
    expect(params.MaxWindowSeconds.Default).toBe(21600);
    expect(params.PageSize.Default).toBe(5000);
    expect(params.ResetBefore.Default).toBe('');
    expect(params.DetailStatuses.Default).toBe('failed,quarantined,filteredAsSpam');
    expect(params.DetailTag.Default).toBe('my.app.office365.messagetracedetail');
    const statuses = new RegExp(params.DetailStatuses.AllowedPattern);
    for (const ok of ['', 'failed', 'failed,quarantined,filteredAsSpam', 'Failed, recalled']) {
      expect(statuses.test(ok)).toBe(true);
    }
    expect(statuses.test('failed;rm')).toBe(false);
    const tag = new RegExp(params.DetailTag.AllowedPattern);
    expect(tag.test('my.app.office365.messagetracedetail')).toBe(true);
    expect(tag.test('notag')).toBe(false);
  });

  test('alarms on errors and throttles of this function', () => {
    for (const metric of ['Errors', 'Throttles']) {
      template.hasResourceProperties('AWS::CloudWatch::Alarm', {
        Namespace: 'AWS/Lambda',
        MetricName: metric,
        Dimensions: [{ Name: 'FunctionName', Value: { Ref: 'Function' } }],
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      });
    }
  });

  test('outputs: function name, bucket, secret ARN, log group', () => {
    for (const name of ['FunctionName', 'StateBucketName', 'SecretArn', 'LogGroupName']) {
      template.hasOutput(name, {});
    }
  });
});

// ---------------------------------------------------------------- alarms on the tick metrics

/** Synthesizes the stack (no bundling) with the given props. */
function synth(props: M365TraceToDevoStackProps = {}): Json {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new M365TraceToDevoStack(app, 'AlarmStack', { stackName: 'm365-trace-to-devo-alarms', ...props });
  return Template.fromStack(stack).toJSON();
}

/**
 * What CloudFormation would deploy for these parameter values (the defaults unless given):
 * conditions evaluated, resources whose condition is false dropped, Fn::If resolved, Refs to
 * parameters replaced by their values, AWS::NoValue removed.
 */
function deployed(tpl: Json, overrides: Record<string, string> = {}): Record<string, Json> {
  const params: Record<string, string> = {};
  for (const [name, p] of Object.entries(tpl.Parameters as Record<string, Json>)) {
    params[name] = overrides[name] ?? String(p.Default);
  }
  const NO_VALUE = Symbol('NoValue');
  const conditions: Record<string, boolean> = {};
  const condition = (name: string): boolean => {
    if (!(name in conditions)) conditions[name] = Boolean(resolve(tpl.Conditions[name]));
    return conditions[name];
  };
  const resolve = (v: Json): Json => {
    if (Array.isArray(v)) return v.map(resolve).filter((x) => x !== NO_VALUE);
    if (v === null || typeof v !== 'object') return v;
    const keys = Object.keys(v);
    if (keys.length === 1) {
      const [k] = keys;
      const arg = v[k];
      if (k === 'Ref') return arg === 'AWS::NoValue' ? NO_VALUE : arg in params ? params[arg] : v;
      if (k === 'Fn::If') return resolve(condition(arg[0]) ? arg[1] : arg[2]);
      if (k === 'Fn::Equals') return String(resolve(arg[0])) === String(resolve(arg[1]));
      if (k === 'Fn::Not') return !resolve(arg[0]);
      if (k === 'Fn::And') return arg.every((x: Json) => resolve(x));
      if (k === 'Fn::Or') return arg.some((x: Json) => resolve(x));
      if (k === 'Condition') return condition(arg);
    }
    const out: Record<string, Json> = {};
    for (const [k, x] of Object.entries(v)) {
      const r = resolve(x);
      if (r !== NO_VALUE) out[k] = r;
    }
    return out;
  };
  const resources: Record<string, Json> = {};
  for (const [id, r] of Object.entries(tpl.Resources as Record<string, Json>)) {
    if (r.Condition === undefined || condition(r.Condition)) resources[id] = resolve(r);
  }
  return resources;
}

const alarmsOf = (resources: Record<string, Json>): Record<string, Json> =>
  Object.fromEntries(Object.entries(resources).filter(([, r]) => r.Type === 'AWS::CloudWatch::Alarm'));

const TICK_DIMENSIONS = [
  { Name: 'Api', Value: { Ref: 'TraceApi' } },
  { Name: 'FunctionName', Value: { Ref: 'Function' } },
];
const sortedDimensions = (dims: Json[]) => [...dims].sort((a, b) => a.Name.localeCompare(b.Name));
const TOPIC = 'arn:aws:sns:us-east-1:123456789012:m365-oncall';

describe('alarms on the tick metrics (Embedded Metric Format)', () => {
  test('LagAlarm: LagSeconds Maximum above the LagAlarmThresholdSeconds parameter, 3 x 5 minutes', () => {
    const lag = raw.Resources.LagAlarm;
    expect(lag.Type).toBe('AWS::CloudWatch::Alarm');
    expect(lag.Condition).toBeUndefined();
    expect(lag.Properties).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'LagSeconds',
      Statistic: 'Maximum',
      Threshold: { Ref: 'LagAlarmThresholdSeconds' },
      ComparisonOperator: 'GreaterThanThreshold',
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 3,
      // No data = no finished tick: ErrorsAlarm / NoEventsAlarm page for that, not this one.
      TreatMissingData: 'missing',
    });
    expect(METRICS_NAMESPACE).toBe('M365TraceToDevo');
    // The function's dimension set is [FunctionName, Api] (order is irrelevant to CloudWatch).
    expect(sortedDimensions(lag.Properties.Dimensions)).toEqual(TICK_DIMENSIONS);
  });

  test('LagAlarmThresholdSeconds defaults to the default delay plus one hour', () => {
    const p = raw.Parameters.LagAlarmThresholdSeconds;
    expect(p.Type).toBe('Number');
    expect(p.Default).toBe(DEFAULT_LAG_ALARM_THRESHOLD_SECONDS);
    expect(p.Default).toBe(raw.Parameters.DelaySeconds.Default + 3600);
    expect(p.Default).toBe(93600);
    expect(p.Description).toMatch(/DelaySeconds/);
    expect(synth({ lagAlarmThresholdSeconds: 180000 }).Parameters.LagAlarmThresholdSeconds.Default).toBe(180000);
  });

  test('FreshLagAlarm: FreshLagSeconds Maximum above the FreshLagAlarmThresholdSeconds parameter, 3 x 5 minutes', () => {
    const fresh = raw.Resources.FreshLagAlarm;
    expect(fresh.Type).toBe('AWS::CloudWatch::Alarm');
    expect(fresh.Condition).toBeUndefined();
    // The same shape as LagAlarm, on the fresh pass's metric and threshold.
    const lag = raw.Resources.LagAlarm.Properties;
    expect(fresh.Properties).toMatchObject({
      ...Object.fromEntries(
        ['Namespace', 'Statistic', 'ComparisonOperator', 'Period', 'EvaluationPeriods', 'DatapointsToAlarm', 'TreatMissingData'].map(
          (k) => [k, lag[k]],
        ),
      ),
      MetricName: 'FreshLagSeconds',
      Threshold: { Ref: 'FreshLagAlarmThresholdSeconds' },
    });
    expect(sortedDimensions(fresh.Properties.Dimensions)).toEqual(TICK_DIMENSIONS);
  });

  test('FreshLagAlarmThresholdSeconds defaults to the default fresh delay plus one hour', () => {
    const p = raw.Parameters.FreshLagAlarmThresholdSeconds;
    expect(p).toMatchObject({ Type: 'Number', MinValue: 60, MaxValue: 31536000 });
    expect(p.Default).toBe(DEFAULT_FRESH_LAG_ALARM_THRESHOLD_SECONDS);
    expect(p.Default).toBe(raw.Parameters.FreshDelaySeconds.Default + 3600);
    expect(p.Default).toBe(4200);
    expect(synth({ freshLagAlarmThresholdSeconds: 7200 }).Parameters.FreshLagAlarmThresholdSeconds.Default).toBe(7200);
  });

  test('ReconcileGapAlarm: any ReconcileGapSeconds above 0 in 5 minutes, missing data not breaching', () => {
    const gap = raw.Resources.ReconcileGapAlarm;
    expect(gap.Type).toBe('AWS::CloudWatch::Alarm');
    expect(gap.Condition).toBeUndefined();
    expect(gap.Properties).toMatchObject({
      Namespace: 'M365TraceToDevo',
      MetricName: 'ReconcileGapSeconds',
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      DatapointsToAlarm: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(sortedDimensions(gap.Properties.Dimensions)).toEqual(TICK_DIMENSIONS);
  });

  test('the scheduled audit is off by default; with AuditHours, AuditMissingAlarm pages on any missing record', () => {
    expect(raw.Parameters.AuditHours).toMatchObject({ Type: 'Number', Default: 0, MinValue: 0, MaxValue: 168 });
    expect(raw.Parameters.DevoQueryUrl).toMatchObject({ Type: 'String', Default: '' });
    expect(raw.Resources.AuditMissingAlarm.Condition).toBe('CreateAuditAlarm');
    expect(alarmsOf(deployed(raw)).AuditMissingAlarm).toBeUndefined();
    const resources = deployed(raw, { AuditHours: '6', DevoQueryUrl: 'eu' });
    const alarm = alarmsOf(resources).AuditMissingAlarm;
    expect(alarm.Properties).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'AuditMissing',
      Statistic: 'Sum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
      TreatMissingData: 'notBreaching',
    });
    expect(sortedDimensions(raw.Resources.AuditMissingAlarm.Properties.Dimensions)).toEqual(TICK_DIMENSIONS);
    const vars = resources.Function.Properties.Environment.Variables;
    expect(vars.AUDIT_HOURS).toBe('6');
    expect(vars.DEVO_QUERY_URL).toBe('eu');
  });

  test('NoEventsAlarm is off by default: NoEventsAlarmMinutes = 0 and the alarm is not deployed', () => {
    expect(raw.Parameters.NoEventsAlarmMinutes).toMatchObject({ Type: 'Number', Default: 0, MinValue: 0, MaxValue: 1440 });
    expect(raw.Resources.NoEventsAlarm.Condition).toBe('CreateNoEventsAlarm');
    expect(raw.Conditions.CreateNoEventsAlarm).toEqual({
      'Fn::Not': [{ 'Fn::Equals': [{ Ref: 'NoEventsAlarmMinutes' }, '0'] }],
    });
    const alarms = alarmsOf(deployed(raw));
    expect(Object.keys(alarms).sort()).toEqual(['ErrorsAlarm', 'FreshLagAlarm', 'LagAlarm', 'ReconcileGapAlarm', 'ThrottlesAlarm']);
  });

  test('NoEventsAlarm with the parameter set: EventsSent Sum < 1 in every minute of the period, missing = breaching', () => {
    const alarm = alarmsOf(deployed(raw, { NoEventsAlarmMinutes: '90' })).NoEventsAlarm;
    expect(alarm).toBeDefined();
    const p = alarm.Properties;
    expect(p).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: 'EventsSent',
      Statistic: 'Sum',
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      TreatMissingData: 'breaching',
      Period: 60,
      EvaluationPeriods: '90',
      DatapointsToAlarm: '90',
    });
    expect(sortedDimensions(raw.Resources.NoEventsAlarm.Properties.Dimensions)).toEqual(TICK_DIMENSIONS);
    // N out of N one-minute periods = the configured number of minutes.
    expect(p.Period * Number(p.EvaluationPeriods)).toBe(90 * 60);
    // CloudWatch: period x evaluation periods at most one day for periods under an hour.
    expect(raw.Parameters.NoEventsAlarmMinutes.MaxValue * 60).toBeLessThanOrEqual(86400);
  });

  test('NoEventsAlarm with the prop set: present by default, with the right period', () => {
    const tpl = synth({ noEventsAlarmMinutes: 360 });
    expect(tpl.Parameters.NoEventsAlarmMinutes.Default).toBe(360);
    const alarm = alarmsOf(deployed(tpl)).NoEventsAlarm;
    expect(alarm).toBeDefined();
    expect(alarm.Properties.Period * Number(alarm.Properties.EvaluationPeriods)).toBe(360 * 60);
    expect(alarm.Properties.DatapointsToAlarm).toBe(alarm.Properties.EvaluationPeriods);
    // ... and the parameter still turns it off at deploy time.
    expect(alarmsOf(deployed(tpl, { NoEventsAlarmMinutes: '0' })).NoEventsAlarm).toBeUndefined();
  });

  test('out-of-range props are refused at synth time', () => {
    expect(() => synth({ noEventsAlarmMinutes: 1441 })).toThrow(/noEventsAlarmMinutes/);
    expect(() => synth({ noEventsAlarmMinutes: 2.5 })).toThrow(/noEventsAlarmMinutes/);
    expect(() => synth({ lagAlarmThresholdSeconds: 0 })).toThrow(/lagAlarmThresholdSeconds/);
    expect(() => synth({ freshLagAlarmThresholdSeconds: 59 })).toThrow(/freshLagAlarmThresholdSeconds/);
  });
});

describe('alarm notifications (AlarmTopicArn)', () => {
  test('without a topic (default) no alarm has an action', () => {
    expect(raw.Parameters.AlarmTopicArn.Default).toBe('');
    const alarms = alarmsOf(deployed(raw, { NoEventsAlarmMinutes: '60' }));
    expect(Object.keys(alarms).sort()).toEqual(['ErrorsAlarm', 'FreshLagAlarm', 'LagAlarm', 'NoEventsAlarm', 'ReconcileGapAlarm', 'ThrottlesAlarm']);
    for (const [, a] of Object.entries(alarms)) {
      expect(a.Properties.AlarmActions).toBeUndefined();
      expect(a.Properties.OKActions).toBeUndefined();
      expect(a.Properties.InsufficientDataActions).toBeUndefined();
    }
  });

  test('with a topic every alarm notifies it on ALARM and on OK', () => {
    for (const [tpl, overrides] of [
      [raw, { AlarmTopicArn: TOPIC, NoEventsAlarmMinutes: '60' }],
      [synth({ alarmTopicArn: TOPIC, noEventsAlarmMinutes: 60 }), {}],
    ] as [Json, Record<string, string>][]) {
      const alarms = alarmsOf(deployed(tpl, overrides));
      expect(Object.keys(alarms).sort()).toEqual(['ErrorsAlarm', 'FreshLagAlarm', 'LagAlarm', 'NoEventsAlarm', 'ReconcileGapAlarm', 'ThrottlesAlarm']);
      for (const [, a] of Object.entries(alarms)) {
        expect(a.Properties.AlarmActions).toEqual([TOPIC]);
        expect(a.Properties.OKActions).toEqual([TOPIC]);
      }
    }
  });

  test('the actions are wired through the HasAlarmTopic condition on every alarm', () => {
    const wired = { 'Fn::If': ['HasAlarmTopic', [{ Ref: 'AlarmTopicArn' }], { Ref: 'AWS::NoValue' }] };
    for (const [, a] of resourcesOfType('AWS::CloudWatch::Alarm')) {
      expect(a.Properties.AlarmActions).toEqual(wired);
      expect(a.Properties.OKActions).toEqual(wired);
    }
  });
});

describe('many tenants (TenantsKey)', () => {
  test('one tenant by default: no TENANTS_KEY, no tenant policy, throttles alarmed', () => {
    expect(raw.Parameters.TenantsKey.Default).toBe('');
    const resources = deployed(raw);
    expect(resources.Function.Properties.Environment.Variables.TENANTS_KEY).toBeUndefined();
    expect(resources.TenantsPolicy).toBeUndefined();
    expect(resources.ThrottlesAlarm).toBeDefined();
    expect(resources.Function.Properties.ReservedConcurrentExecutions).toBe('10');
    expect(resources.Function.Properties.Environment.Variables.TENANT_METRICS).toBe('on');
    expect(raw.Parameters.TenantMetrics.AllowedValues).toEqual(['on', 'off']);
  });

  test('with a registry: TENANTS_KEY set, the policy deployed, throttling is queueing (no alarm)', () => {
    const resources = deployed(raw, { TenantsKey: 'm365-message-trace/tenants.json', MaxConcurrentTicks: '50' });
    expect(resources.Function.Properties.Environment.Variables.TENANTS_KEY).toBe('m365-message-trace/tenants.json');
    expect(resources.Function.Properties.ReservedConcurrentExecutions).toBe('50');
    expect(resources.TenantsPolicy.Properties.Roles).toEqual([{ Ref: 'FunctionRole' }]);
    expect(resources.ThrottlesAlarm).toBeUndefined();
    expect(Object.keys(alarmsOf(resources)).sort()).toEqual([
      'DispatchFailedAlarm',
      'ErrorsAlarm',
      'FreshLagAlarm',
      'LagAlarm',
      'ReconcileGapAlarm',
      'RegistryErrorsAlarm',
    ]);
  });

  test('with a registry: a bad entry and a tenant not started page at the first dispatch', () => {
    const alarms = alarmsOf(deployed(raw, { TenantsKey: 'm365-message-trace/tenants.json', AlarmTopicArn: TOPIC }));
    for (const [id, metric, statistic] of [
      ['RegistryErrorsAlarm', 'RegistryErrors', 'Maximum'],
      ['DispatchFailedAlarm', 'DispatchFailed', 'Sum'],
    ]) {
      expect(alarms[id].Properties).toMatchObject({
        Namespace: 'M365TraceToDevo',
        MetricName: metric,
        Statistic: statistic,
        Period: 300,
        EvaluationPeriods: 1,
        DatapointsToAlarm: 1,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
        AlarmActions: [TOPIC],
      });
      expect(alarms[id].Properties.Dimensions.map((d: Json) => d.Name).sort()).toEqual(['Api', 'FunctionName']);
    }
  });

  test('the registry key stays under the state prefix the role may read', () => {
    const pattern = new RegExp(raw.Parameters.TenantsKey.AllowedPattern);
    expect(pattern.test('')).toBe(true);
    expect(pattern.test('m365-message-trace/tenants.json')).toBe(true);
    expect(pattern.test('elsewhere/tenants.json')).toBe(false);
    expect(pattern.test('m365-message-trace/tenants.yaml')).toBe(false);
  });

  test('lambda:InvokeFunction on the function itself only; tenant secrets under their prefix only', () => {
    const statements = raw.Resources.TenantsPolicy.Properties.PolicyDocument.Statement;
    const invoke = statements.find((s: Json) => s.Sid === 'InvokeItself');
    expect(invoke.Action).toBe('lambda:InvokeFunction');
    expect(invoke.Resource).toEqual([
      { 'Fn::GetAtt': ['Function', 'Arn'] },
      { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Function', 'Arn'] }, ':*']] },
    ]);
    const secrets = statements.find((s: Json) => s.Sid === 'ReadTenantSecrets');
    expect(secrets.Action).toBe('secretsmanager:GetSecretValue');
    expect(secrets.Resource['Fn::Sub']).toMatch(/:secret:m365-trace-to-devo\/\*$/);
    for (const s of statements) {
      expect(s.Effect).toBe('Allow');
      for (const r of asList(s.Resource)) expect(r).not.toBe('*');
    }
  });

  test('asynchronous retries stay off for the tenant ticks', () => {
    template.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 0 });
  });
});

describe('dashboard', () => {
  const body = (): Json => JSON.parse(raw.Resources.Dashboard.Properties.DashboardBody['Fn::Sub']);

  test('one dashboard named after the stack', () => {
    template.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
    expect(raw.Resources.Dashboard.Properties.DashboardName).toEqual({ 'Fn::Sub': '${AWS::StackName}-m365-trace-to-devo' });
  });

  test('lag per tenant (LagSeconds and FreshLagSeconds), events sent, failed ticks, throttling, details, audit, tenants by lag', () => {
    const widgets = body().widgets;
    const text = JSON.stringify(widgets);
    for (const metric of ['LagSeconds', 'FreshLagSeconds', 'TickFailed']) {
      expect(text).toContain(`SEARCH('{M365TraceToDevo,Api,FunctionName,Tenant} MetricName=\\"${metric}\\" FunctionName=\\"\${Function}\\"'`);
    }
    expect(text).toContain('"EventsSent"');
    expect(text).toContain('"ThrottledRequests"');
    expect(text).toContain('"QuotaContention"');
    for (const metric of ['DetailsSent', 'DetailsQueued', 'AuditMissing', 'AuditExtra']) {
      expect(text).toContain(`"M365TraceToDevo","${metric}","FunctionName","\${Function}"`);
    }
    expect(text).toContain('"AWS/Lambda","Throttles"');
    const log = widgets.find((w: Json) => w.type === 'log');
    expect(log.properties.query).toMatch(/^SOURCE '\$\{FunctionLogGroup\}' \| filter event = "summary"/);
    expect(log.properties.query).toContain('by tenant | sort lag_s desc');
    // Widgets do not overlap on the 24-column grid.
    const cells = new Set<string>();
    for (const w of widgets) {
      expect(w.x + w.width).toBeLessThanOrEqual(24);
      for (let x = w.x; x < w.x + w.width; x++)
        for (let y = w.y; y < w.y + w.height; y++) {
          expect(cells.has(`${x},${y}`)).toBe(false);
          cells.add(`${x},${y}`);
        }
    }
  });
});
