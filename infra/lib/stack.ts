// The m365-trace-to-devo stack, as ../template.yaml (SAM) describes it.
//
// Same CloudFormation parameters (names, defaults, allowed values), same logical IDs for the
// resources that matter, same security properties. `scripts/compare-templates` fails when the
// two drift (runtime, architecture, environment variable names, IAM statements, reserved
// concurrency, schedule, bucket settings, every alarm field by field); the Jest tests under
// test/ prove the security properties and the alarms on the synthesized template.
import * as path from 'path';
import {
  Aws,
  CfnCondition,
  CfnOutput,
  CfnParameter,
  Duration,
  Fn,
  RemovalPolicy,
  Stack,
  StackProps,
  Validations,
} from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { RustFunction } from 'cargo-lambda-cdk';
import { Construct } from 'constructs';
import { dashboardBody } from './dashboard';

/** Name of the Lambda binary in the repository's Cargo package. */
export const BINARY_NAME = 'm365-trace-to-devo';
/** Every checkpoint (scheduled and backfill) lives under this prefix of the state bucket. */
export const STATE_PREFIX = 'm365-message-trace/';
export const STATE_KEY = `${STATE_PREFIX}checkpoint.json`;
/** Function timeout: below the 5-minute schedule period so that ticks never overlap. */
export const TIMEOUT_SECONDS = 240;
/** Memory: headroom for one 5000-record Graph page in memory, and twice the CPU of 128 MB. */
export const MEMORY_MB = 256;
/** Namespace of the function's Embedded Metric Format metrics (dimensions FunctionName + Api). */
export const METRICS_NAMESPACE = 'M365TraceToDevo';
/** Default MaxConcurrentTicks: tenant ticks that run at once (one tenant never overlaps itself). */
export const DEFAULT_MAX_CONCURRENT_TICKS = 10;
/** Tenant secrets are read under this name prefix (scripts/make-secret --tenant writes there). */
export const TENANT_SECRET_PREFIX = 'm365-trace-to-devo/';
/** Default LagAlarmThresholdSeconds: the default DelaySeconds (90000) plus one hour. */
export const DEFAULT_LAG_ALARM_THRESHOLD_SECONDS = 90000 + 3600;
/** Default FreshDelaySeconds: the fresh pass sends records 10 minutes after they were received. */
export const DEFAULT_FRESH_DELAY_SECONDS = 600;
/** Default FreshLagAlarmThresholdSeconds: the default FreshDelaySeconds plus one hour. */
export const DEFAULT_FRESH_LAG_ALARM_THRESHOLD_SECONDS = DEFAULT_FRESH_DELAY_SECONDS + 3600;
/**
 * The tag the function puts on every ledger object (`key=value`); the bucket's lifecycle rule
 * selects ledger objects by it, because a lifecycle prefix cannot hold a wildcard and ledgers
 * live in `{prefix}ledger/` and, with tenants, `{prefix}tenants/NAME/ledger/`.
 */
export const LEDGER_TAG = { key: 'm365-trace-to-devo', value: 'ledger' };
/** A ledger object left behind expires after this many days (the backstop). */
export const LEDGER_EXPIRATION_DAYS = 3;
const SECRET_PLACEHOLDER = '{"placeholder":"store the real value with scripts/make-secret"}';

export interface M365TraceToDevoStackProps extends StackProps {
  /**
   * Cargo.toml of the package that holds the `m365-trace-to-devo` binary.
   * @default the repository root's Cargo.toml
   */
  readonly manifestPath?: string;

  /**
   * Default of the `LagAlarmThresholdSeconds` parameter (seconds). Keep it at least one hour
   * above `DelaySeconds`: the lag never falls below the delay.
   * @default 93600 (the default DelaySeconds, 90000, plus 1 hour)
   */
  readonly lagAlarmThresholdSeconds?: number;

  /**
   * Default of the `FreshLagAlarmThresholdSeconds` parameter (seconds). Keep it at least one
   * hour above `FreshDelaySeconds`.
   * @default 4200 (the default FreshDelaySeconds, 600, plus 1 hour)
   */
  readonly freshLagAlarmThresholdSeconds?: number;

  /**
   * Default of the `NoEventsAlarmMinutes` parameter: minutes without any event sent to Devo
   * before NoEventsAlarm fires (1..1440); 0 leaves the alarm out.
   * @default 0 (no NoEventsAlarm)
   */
  readonly noEventsAlarmMinutes?: number;

  /**
   * Default of the `AlarmTopicArn` parameter: SNS topic notified by every alarm.
   * @default '' (the alarms have no action)
   */
  readonly alarmTopicArn?: string;
}

export class M365TraceToDevoStack extends Stack {
  public readonly function: lambda.Function;
  public readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: M365TraceToDevoStackProps = {}) {
    super(scope, id, {
      description:
        'm365-trace-to-devo - pulls Microsoft 365 message trace records on a schedule and forwards them to Devo over mutual TLS (CDK)',
      ...props,
    });

    // Props that set parameter defaults are checked here, so that a bad value fails at synth
    // rather than at deploy (the parameters' MinValue/MaxValue say the same).
    const noEventsDefault = props.noEventsAlarmMinutes ?? 0;
    if (!Number.isInteger(noEventsDefault) || noEventsDefault < 0 || noEventsDefault > 1440) {
      throw new Error(`noEventsAlarmMinutes must be a whole number of minutes from 0 (off) to 1440, got ${noEventsDefault}`);
    }
    const lagThresholdDefault = props.lagAlarmThresholdSeconds ?? DEFAULT_LAG_ALARM_THRESHOLD_SECONDS;
    if (!Number.isFinite(lagThresholdDefault) || lagThresholdDefault < 60 || lagThresholdDefault > 31536000) {
      throw new Error(`lagAlarmThresholdSeconds must be from 60 to 31536000 seconds, got ${lagThresholdDefault}`);
    }
    const freshLagThresholdDefault = props.freshLagAlarmThresholdSeconds ?? DEFAULT_FRESH_LAG_ALARM_THRESHOLD_SECONDS;
    if (!Number.isFinite(freshLagThresholdDefault) || freshLagThresholdDefault < 60 || freshLagThresholdDefault > 31536000) {
      throw new Error(`freshLagAlarmThresholdSeconds must be from 60 to 31536000 seconds, got ${freshLagThresholdDefault}`);
    }

    // ------------------------------------------------------------ parameters (as template.yaml)
    const scheduleExpression = new CfnParameter(this, 'ScheduleExpression', {
      type: 'String',
      default: 'rate(5 minutes)',
      description: 'EventBridge schedule of the ticks. Keep the period longer than the function timeout (240 s).',
      allowedPattern: '^(rate\\(.+\\)|cron\\(.+\\))$',
    });
    const devoAddress = new CfnParameter(this, 'DevoAddress', {
      type: 'String',
      default: 'collector-us.devo.io:443',
      description: 'Devo relay host:port (collector-us, collector-eu, collector-ca, collector-ap ... .devo.io:443).',
      allowedPattern: '^[A-Za-z0-9.-]+:[0-9]{1,5}$',
    });
    const devoTag = new CfnParameter(this, 'DevoTag', {
      type: 'String',
      default: 'cloud.office365.messagetracing',
      description: 'Devo tag (the table the events land in).',
      allowedPattern: '^[A-Za-z0-9_.-]+$',
    });
    const statusTag = new CfnParameter(this, 'StatusTag', {
      type: 'String',
      default: 'my.app.m365trace.status',
      description:
        'Devo tag of the status line each tick sends per tenant (outcome, lags, counts, errorType), so that Devo itself shows which tenant went silent or fell behind. Empty: no status line.',
      allowedPattern: '^([A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+)?$',
    });
    const traceApi = new CfnParameter(this, 'TraceApi', {
      type: 'String',
      default: 'graph',
      allowedValues: ['graph', 'reporting'],
      description: 'Microsoft Graph message trace (default) or the legacy Reporting Web Service.',
    });
    const cloud = new CfnParameter(this, 'Cloud', {
      type: 'String',
      default: 'global',
      allowedValues: ['global', 'gcc', 'gcc-high', 'dod', 'china'],
      description: "Microsoft 365 national cloud whose login, Graph and reporting endpoints are used.",
    });
    const delaySeconds = new CfnParameter(this, 'DelaySeconds', {
      type: 'Number',
      default: 90000,
      minValue: 0,
      maxValue: 2592000,
      description: 'A window never ends later than now minus this (Microsoft may take 24 h to show a record).',
    });
    // Two passes (docs/design.md "Passes"): the fresh pass waits FreshDelaySeconds, the
    // reconciliation pass DelaySeconds.
    const freshDelaySeconds = new CfnParameter(this, 'FreshDelaySeconds', {
      type: 'Number',
      default: DEFAULT_FRESH_DELAY_SECONDS,
      minValue: 0,
      maxValue: 2592000,
      description:
        'The fresh pass sends each record once this many seconds after it was received (default 10 minutes); the reconciliation pass sends, after DelaySeconds, what Microsoft exposed late or whose status changed. 0 - one pass at DelaySeconds. At most DelaySeconds (the function refuses a larger value at its first step).',
    });
    const historicDays = new CfnParameter(this, 'HistoricDays', {
      type: 'Number',
      default: 10,
      minValue: 0,
      maxValue: 90,
      description: 'With no checkpoint yet, start this many days back (at most 90 for Graph, 10 for reporting).',
    });
    const maxWindowSeconds = new CfnParameter(this, 'MaxWindowSeconds', {
      type: 'Number',
      default: 21600,
      minValue: 60,
      maxValue: 864000,
      description: "Longest window pulled in one query (at most the API's 10-day limit).",
    });
    const pageSize = new CfnParameter(this, 'PageSize', {
      type: 'Number',
      default: 5000,
      minValue: 1,
      maxValue: 5000,
      description: 'Graph $top (records per page).',
    });
    const resetBefore = new CfnParameter(this, 'ResetBefore', {
      type: 'String',
      default: '',
      description:
        'Optional RFC 3339 time, Devo\'s "reset persistence": each time this value changes, the schedule restarts from HistoricDays back and sends that span again (it does not restart from the time given). Leave empty in normal operation.',
      allowedPattern: '^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$',
    });
    const detailStatuses = new CfnParameter(this, 'DetailStatuses', {
      type: 'String',
      default: 'failed,quarantined,filteredAsSpam',
      description:
        'Deliveries whose details (the NDR, the rule, the quarantine or Junk placement) are fetched after both passes, with what the request budget leaves - a comma-separated list of failed, quarantined, filteredAsSpam, delivered, expanded, recalled, gettingStatus. Empty - no detail call and no detail line. Graph only.',
      allowedPattern: '^$|^[A-Za-z]+( *, *[A-Za-z]+)*$',
    });
    const detailTag = new CfnParameter(this, 'DetailTag', {
      type: 'String',
      default: 'my.app.office365.messagetracedetail',
      description: 'Devo tag of the delivery detail lines (not DevoTag, not StatusTag).',
      allowedPattern: '^[A-Za-z0-9_-]+(\\.[A-Za-z0-9_-]+)+$',
    });
    const existingSecretArn = new CfnParameter(this, 'ExistingSecretArn', {
      type: 'String',
      default: '',
      description:
        'Optional ARN of an existing Secrets Manager secret holding the credentials JSON. Empty: the stack creates a secret with a placeholder value that you then fill with scripts/make-secret.',
      allowedPattern: '^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$',
    });
    const tenantsKey = new CfnParameter(this, 'TenantsKey', {
      type: 'String',
      default: '',
      description:
        'Optional key of the tenant registry in the state bucket (docs/deploy.md "Many tenants"), e.g. m365-message-trace/tenants.json. Empty (default) - the stack serves one tenant with the stack\'s secret. Set - every scheduled event starts one tick per enabled tenant of the registry; tenant secrets must be named m365-trace-to-devo/NAME.',
      allowedPattern: '^$|^m365-message-trace/[A-Za-z0-9._/-]+\\.json$',
    });
    const maxConcurrentTicks = new CfnParameter(this, 'MaxConcurrentTicks', {
      type: 'Number',
      default: DEFAULT_MAX_CONCURRENT_TICKS,
      minValue: 1,
      maxValue: 1000,
      description:
        'Reserved concurrency of the function - how many tenant ticks run at once (the others wait in Lambda\'s queue). One tenant never runs twice at once whatever the value: its S3 lease refuses a second tick.',
    });
    const tenantMetrics = new CfnParameter(this, 'TenantMetrics', {
      type: 'String',
      default: 'on',
      allowedValues: ['on', 'off'],
      description:
        'on (default) - LagSeconds, FreshLagSeconds and TickFailed are also published per tenant (dimension Tenant; the dashboard\'s per-tenant lines). Each is a custom metric per tenant, billed monthly; off - per function only.',
    });
    const devoQueryUrl = new CfnParameter(this, 'DevoQueryUrl', {
      type: 'String',
      default: '',
      description:
        "Optional Devo Query API of your domain's region - us, eu, ca, es or apac, or its base URL (https://apiv2-us.devo.com/search) - where `audit` reads back what arrived, `cutover` finds where an earlier collector stopped and the ticks of a cut-over's overlap read what Devo already holds (required then), with the secret's devo_query_token. Empty (default) - nothing reads from Devo.",
      allowedPattern: '^$|^(us|eu|ca|es|apac)$|^https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._/-]*)?$',
    });
    const auditHours = new CfnParameter(this, 'AuditHours', {
      type: 'Number',
      default: 0,
      minValue: 0,
      maxValue: 168,
      description:
        'Scheduled audit - after each tick, compare at most this many complete hours with what Devo holds (metrics AuditMissing and AuditExtra, AuditMissingAlarm); needs DevoQueryUrl and devo_query_token in the secret. 0 (default) - off. It reports; `audit --repair` re-sends.',
    });
    const logLevel = new CfnParameter(this, 'LogLevel', {
      type: 'String',
      default: 'info',
      allowedValues: ['error', 'warn', 'info', 'debug', 'trace'],
      description: 'Log level of the function.',
    });
    const logRetentionDays = new CfnParameter(this, 'LogRetentionDays', {
      type: 'Number',
      default: '90',
      allowedValues: [
        '1', '3', '5', '7', '14', '30', '60', '90', '120', '150', '180', '365', '400', '545', '731', '1096', '1827',
        '2192', '2557', '2922', '3288', '3653',
      ],
      description: "Retention of the function's log group.",
    });
    const alarmTopicArn = new CfnParameter(this, 'AlarmTopicArn', {
      type: 'String',
      default: props.alarmTopicArn ?? '',
      description:
        'Optional SNS topic ARN notified by every alarm, when it goes to ALARM and back to OK. Empty - the alarms have no action.',
      allowedPattern: '^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$',
    });
    const lagAlarmThresholdSeconds = new CfnParameter(this, 'LagAlarmThresholdSeconds', {
      type: 'Number',
      default: lagThresholdDefault,
      minValue: 60,
      maxValue: 31536000,
      description:
        'LagAlarm fires when the lag of the complete record (now minus the instant before which every record was sent and reconciled, metric LagSeconds) stays above this for 15 minutes. The default, 93600 (26 h), is the default DelaySeconds (90000) plus 1 hour: the lag never falls below DelaySeconds, so when you change DelaySeconds set this to DelaySeconds + 3600 (or more).',
    });
    const freshLagAlarmThresholdSeconds = new CfnParameter(this, 'FreshLagAlarmThresholdSeconds', {
      type: 'Number',
      default: freshLagThresholdDefault,
      minValue: 60,
      maxValue: 31536000,
      description:
        "FreshLagAlarm fires when the fresh pass's lag (now minus its position, metric FreshLagSeconds) stays above this for 15 minutes. The default, 4200 (70 minutes), is the default FreshDelaySeconds (600) plus 1 hour: when you change FreshDelaySeconds set this to FreshDelaySeconds + 3600 (or more). With FreshDelaySeconds 0 the metric is not written and the alarm stays INSUFFICIENT_DATA.",
    });
    const noEventsAlarmMinutes = new CfnParameter(this, 'NoEventsAlarmMinutes', {
      type: 'Number',
      default: noEventsDefault,
      minValue: 0,
      maxValue: 1440,
      description:
        "NoEventsAlarm fires when no event at all was sent to Devo for this many minutes (1 to 1440). 0 (default) - the alarm is not created. Choose it longer than the schedule period and than the quietest stretch of the tenant's mail (e.g. 360 for 6 hours).",
    });

    const createSecret = new CfnCondition(this, 'CreateSecret', {
      expression: Fn.conditionEquals(existingSecretArn.valueAsString, ''),
    });
    const hasResetBefore = new CfnCondition(this, 'HasResetBefore', {
      expression: Fn.conditionNot(Fn.conditionEquals(resetBefore.valueAsString, '')),
    });
    const hasAlarmTopic = new CfnCondition(this, 'HasAlarmTopic', {
      expression: Fn.conditionNot(Fn.conditionEquals(alarmTopicArn.valueAsString, '')),
    });
    const createNoEventsAlarm = new CfnCondition(this, 'CreateNoEventsAlarm', {
      expression: Fn.conditionNot(Fn.conditionEquals(noEventsAlarmMinutes.valueAsString, '0')),
    });
    const hasTenants = new CfnCondition(this, 'HasTenants', {
      expression: Fn.conditionNot(Fn.conditionEquals(tenantsKey.valueAsString, '')),
    });
    const hasDevoQueryUrl = new CfnCondition(this, 'HasDevoQueryUrl', {
      expression: Fn.conditionNot(Fn.conditionEquals(devoQueryUrl.valueAsString, '')),
    });
    const createAuditAlarm = new CfnCondition(this, 'CreateAuditAlarm', {
      expression: Fn.conditionNot(Fn.conditionEquals(auditHours.valueAsString, '0')),
    });
    const singleTenant = new CfnCondition(this, 'SingleTenant', {
      expression: Fn.conditionEquals(tenantsKey.valueAsString, ''),
    });

    // ------------------------------------------------------------ state bucket
    this.bucket = new s3.Bucket(this, 'StateBucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      enforceSSL: true,
      // Every previous checkpoint is kept (roll back by hand); the lifecycle bounds the cost.
      versioned: true,
      lifecycleRules: [
        {
          id: 'expire-old-checkpoint-versions',
          noncurrentVersionExpiration: Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
        { id: 'remove-expired-delete-markers', expiredObjectDeleteMarker: true },
        // The backstop for ledger objects: the reconciliation pass deletes each part once its
        // span is committed; a part left behind expires after 3 days, its version a day after it
        // stops being current. Selected by the tag the function writes (see LEDGER_TAG).
        {
          id: 'expire-ledger-objects',
          prefix: STATE_PREFIX,
          tagFilters: { [LEDGER_TAG.key]: LEDGER_TAG.value },
          expiration: Duration.days(LEDGER_EXPIRATION_DAYS),
          noncurrentVersionExpiration: Duration.days(1),
        },
      ],
      // The checkpoint is the collector's memory: keep it when the stack goes away.
      removalPolicy: RemovalPolicy.RETAIN,
    });
    pinLogicalId(this.bucket, 'StateBucket');
    pinLogicalId(this.bucket.policy!, 'StateBucketPolicy');

    // ------------------------------------------------------------ secret (placeholder only)
    // The real value is stored afterwards with scripts/make-secret; never edit the placeholder
    // (a changed SecretString would overwrite the stored value on the next deploy).
    const secret = new secretsmanager.CfnSecret(this, 'Secret', {
      description: Fn.sub('m365-trace-to-devo credentials (${AWS::StackName}): fill with scripts/make-secret'),
      secretString: SECRET_PLACEHOLDER,
    });
    secret.cfnOptions.condition = createSecret;
    secret.overrideLogicalId('Secret');
    const secretArn = Fn.conditionIf(createSecret.logicalId, secret.ref, existingSecretArn.valueAsString).toString();

    // ------------------------------------------------------------ logs
    const logGroup = new logs.LogGroup(this, 'FunctionLogGroup', {
      logGroupName: Fn.sub('/aws/lambda/${AWS::StackName}-m365-trace-to-devo'),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    (logGroup.node.defaultChild as logs.CfnLogGroup).retentionInDays = logRetentionDays.valueAsNumber;
    pinLogicalId(logGroup, 'FunctionLogGroup');

    // ------------------------------------------------------------ role (least privilege)
    const role = new iam.Role(this, 'FunctionRole', {
      description: 'm365-trace-to-devo - checkpoint prefix, one secret, its own log group; nothing else.',
      assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
      inlinePolicies: {
        'm365-trace-to-devo': new iam.PolicyDocument({
          statements: [
            new iam.PolicyStatement({
              sid: 'Logs',
              actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
              resources: [logGroup.logGroupArn],
            }),
            // Scheduled and backfill checkpoints, one prefix; conditional PUTs need nothing more.
            new iam.PolicyStatement({
              sid: 'CheckpointObjects',
              actions: ['s3:GetObject', 's3:PutObject'],
              resources: [this.bucket.arnForObjects(`${STATE_PREFIX}*`)],
            }),
            // Ledger objects: the reconciliation pass deletes the parts it has read; the fresh pass
            // tags each part as it writes it (PUT with x-amz-tagging needs s3:PutObjectTagging).
            new iam.PolicyStatement({
              sid: 'LedgerObjects',
              actions: ['s3:DeleteObject', 's3:PutObjectTagging'],
              resources: [
                this.bucket.arnForObjects(`${STATE_PREFIX}ledger/*`),
                this.bucket.arnForObjects(`${STATE_PREFIX}tenants/*/ledger/*`),
              ],
            }),
            // Without s3:ListBucket a GET of a missing key is 403 instead of 404 (no checkpoint yet).
            new iam.PolicyStatement({
              sid: 'CheckpointListForNotFound',
              actions: ['s3:ListBucket'],
              resources: [this.bucket.bucketArn],
              conditions: { StringLike: { 's3:prefix': `${STATE_PREFIX}*` } },
            }),
            new iam.PolicyStatement({
              sid: 'ReadCredentials',
              actions: ['secretsmanager:GetSecretValue'],
              resources: [secretArn],
            }),
          ],
        }),
      },
    });
    pinLogicalId(role, 'FunctionRole');

    // ------------------------------------------------------------ function
    const environment: Record<string, string> = {
      SECRET_ID: secretArn,
      STATE_BUCKET: this.bucket.bucketName,
      STATE_KEY,
      DEVO_ADDRESS: devoAddress.valueAsString,
      DEVO_TAG: devoTag.valueAsString,
      STATUS_TAG: statusTag.valueAsString,
      TRACE_API: traceApi.valueAsString,
      CLOUD: cloud.valueAsString,
      DELAY_SECONDS: delaySeconds.valueAsString,
      FRESH_DELAY_SECONDS: freshDelaySeconds.valueAsString,
      HISTORIC_DAYS: historicDays.valueAsString,
      MAX_WINDOW_SECONDS: maxWindowSeconds.valueAsString,
      PAGE_SIZE: pageSize.valueAsString,
      LOG_LEVEL: logLevel.valueAsString,
      RESET_BEFORE: Fn.conditionIf(hasResetBefore.logicalId, resetBefore.valueAsString, Aws.NO_VALUE).toString(),
      TENANTS_KEY: Fn.conditionIf(hasTenants.logicalId, tenantsKey.valueAsString, Aws.NO_VALUE).toString(),
      TENANT_METRICS: tenantMetrics.valueAsString,
      DETAIL_STATUSES: detailStatuses.valueAsString,
      DETAIL_TAG: detailTag.valueAsString,
      DEVO_QUERY_URL: Fn.conditionIf(hasDevoQueryUrl.logicalId, devoQueryUrl.valueAsString, Aws.NO_VALUE).toString(),
      AUDIT_HOURS: auditHours.valueAsString,
    };

    this.function = new RustFunction(this, 'Function', {
      manifestPath: props.manifestPath ?? path.join(__dirname, '..', '..', 'Cargo.toml'),
      binaryName: BINARY_NAME,
      architecture: lambda.Architecture.ARM_64,
      bundling: { architecture: lambda.Architecture.ARM_64 },
      description: 'Microsoft 365 message trace -> Devo (one tick per invocation)',
      memorySize: MEMORY_MB,
      timeout: Duration.seconds(TIMEOUT_SECONDS),
      // Ticks (one per tenant) at once; the S3 lease keeps one tenant's ticks from overlapping.
      reservedConcurrentExecutions: maxConcurrentTicks.valueAsNumber,
      role,
      logGroup,
      // A failed tick is not retried: the next tick resumes from the checkpoint; one still
      // queued (throttled) after a schedule period is dropped, the next one replaces it.
      retryAttempts: 0,
      maxEventAge: Duration.seconds(300),
      environment,
    });
    pinLogicalId(this.function, 'Function');

    const rule = new events.Rule(this, 'FunctionTick', {
      description: 'One m365-trace-to-devo tick',
      schedule: events.Schedule.expression(scheduleExpression.valueAsString),
      targets: [new targets.LambdaFunction(this.function)],
    });
    pinLogicalId(rule, 'FunctionTick');

    // ------------------------------------------------------------ many tenants (as template.yaml)
    // The dispatcher invokes the function itself; a tenant's tick reads the tenant's secret. A
    // policy of its own, so that it can name the function without a dependency cycle.
    const tenantsPolicy = new iam.CfnPolicy(this, 'TenantsPolicy', {
      policyName: 'm365-trace-to-devo-tenants',
      roles: [role.roleName],
      policyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'InvokeItself',
            Effect: 'Allow',
            Action: 'lambda:InvokeFunction',
            Resource: [this.function.functionArn, Fn.join('', [this.function.functionArn, ':*'])],
          },
          {
            Sid: 'ReadTenantSecrets',
            Effect: 'Allow',
            Action: 'secretsmanager:GetSecretValue',
            Resource: Fn.sub(`arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:${TENANT_SECRET_PREFIX}*`),
          },
        ],
      },
    });
    tenantsPolicy.cfnOptions.condition = hasTenants;
    tenantsPolicy.overrideLogicalId('TenantsPolicy');

    // ------------------------------------------------------------ dashboard (as template.yaml)
    const dashboard = new cloudwatch.CfnDashboard(this, 'Dashboard', {
      dashboardName: Fn.sub('${AWS::StackName}-m365-trace-to-devo'),
      dashboardBody: Fn.sub(dashboardBody()),
    });
    dashboard.overrideLogicalId('Dashboard');

    // ------------------------------------------------------------ alarms
    const alarmActions = Fn.conditionIf(hasAlarmTopic.logicalId, [alarmTopicArn.valueAsString], Aws.NO_VALUE);
    const alarm = (
      id: string,
      metric: cloudwatch.Metric,
      description: string,
      options: {
        evaluationPeriods: number;
        datapointsToAlarm: number;
        threshold?: number;
        comparisonOperator?: cloudwatch.ComparisonOperator;
        treatMissingData?: cloudwatch.TreatMissingData;
      },
    ) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: options.threshold ?? 1,
        evaluationPeriods: options.evaluationPeriods,
        datapointsToAlarm: options.datapointsToAlarm,
        comparisonOperator: options.comparisonOperator ?? cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: options.treatMissingData ?? cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const cfn = a.node.defaultChild as cloudwatch.CfnAlarm;
      cfn.addPropertyOverride('AlarmActions', alarmActions);
      cfn.addPropertyOverride('OKActions', alarmActions);
      cfn.overrideLogicalId(id);
      return a;
    };
    alarm(
      'ErrorsAlarm',
      this.function.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      'm365-trace-to-devo ticks are failing (2 failed invocations within 15 minutes). See the log group.',
      { evaluationPeriods: 3, datapointsToAlarm: 2 },
    );
    // One tenant only: with a registry, throttling is how Lambda queues the tenants' ticks
    // beyond MaxConcurrentTicks (the dashboard shows it; LagAlarm fires if a tenant falls behind).
    const throttles = alarm(
      'ThrottlesAlarm',
      this.function.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
      'm365-trace-to-devo was throttled - a tick (or a backfill) was still running when the next one came.',
      { evaluationPeriods: 1, datapointsToAlarm: 1 },
    );
    (throttles.node.defaultChild as cloudwatch.CfnAlarm).cfnOptions.condition = singleTenant;

    // The function's own metrics: one Embedded Metric Format document per tick in its log.
    // Api is the TRACE_API the function runs with, i.e. the TraceApi parameter.
    const tickMetric = (metricName: string, statistic: string, period: Duration) =>
      new cloudwatch.Metric({
        namespace: METRICS_NAMESPACE,
        metricName,
        dimensionsMap: { FunctionName: this.function.functionName, Api: traceApi.valueAsString },
        statistic,
        period,
      });
    alarm(
      'LagAlarm',
      tickMetric('LagSeconds', 'Maximum', Duration.minutes(5)),
      "m365-trace-to-devo's complete record is behind - the lag (now minus the instant before which every record was sent and reconciled) of the worst tenant has been above LagAlarmThresholdSeconds for 15 minutes. Ticks run but a checkpoint (or the reconciliation pass) does not advance fast enough: the dashboard and `tenants list` say which tenant; see its summary lines and docs/operations.md, troubleshooting.",
      {
        threshold: lagAlarmThresholdSeconds.valueAsNumber,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        // missing, not breaching: LagSeconds is only written by a tick that finished with a
        // checkpoint, so no data means ticks failing (ErrorsAlarm), throttled (ThrottlesAlarm) or
        // not running (NoEventsAlarm, when enabled); paging here too would only duplicate those,
        // and with a schedule longer than 5 minutes the alarm would never clear. Not
        // notBreaching either: a lag alarm must not announce "OK" because the ticks stopped.
        treatMissingData: cloudwatch.TreatMissingData.MISSING,
      },
    );
    // The fresh pass's lag: same shape as LagAlarm; no data when FreshDelaySeconds is 0.
    alarm(
      'FreshLagAlarm',
      tickMetric('FreshLagSeconds', 'Maximum', Duration.minutes(5)),
      "m365-trace-to-devo's fresh pass is behind - its lag (now minus its position, metric FreshLagSeconds) has been above FreshLagAlarmThresholdSeconds for 15 minutes. Records reach Devo later than FreshDelaySeconds: see the per-tick summary lines and the Retries/ThrottledRequests metrics.",
      {
        threshold: freshLagAlarmThresholdSeconds.valueAsNumber,
        evaluationPeriods: 3,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.MISSING,
      },
    );
    // With a registry, the dispatch's own metrics (as template.yaml): a registry entry that
    // cannot run, or a tenant Lambda would not start after retries, is not a failed invocation
    // (the other tenants ran), so ErrorsAlarm does not see it. Each pages at the first dispatch
    // that has one.
    for (const [id, metricName, statistic, description] of [
      [
        'RegistryErrorsAlarm',
        'RegistryErrors',
        'Maximum',
        "m365-trace-to-devo's tenant registry has entries that cannot run (RegistryErrors) - each is skipped while the other tenants run. The dispatch's result and its registry_entry_invalid log lines name the entry (index, name) and the problem; fix the entry in the registry object.",
      ],
      [
        'DispatchFailedAlarm',
        'DispatchFailed',
        'Sum',
        "m365-trace-to-devo could not start some tenants' ticks (DispatchFailed) - Lambda Invoke refused them after retries within the dispatch's deadline. The dispatch's result and its dispatch_not_started log lines name the tenants and the error; they are tried again at the next scheduled event.",
      ],
    ]) {
      const a = alarm(id, tickMetric(metricName, statistic, Duration.minutes(5)), description, {
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
      });
      (a.node.defaultChild as cloudwatch.CfnAlarm).cfnOptions.condition = hasTenants;
    }
    // A span the reconciliation pass dropped without its second look: any datapoint above 0.
    alarm(
      'ReconcileGapAlarm',
      tickMetric('ReconcileGapSeconds', 'Maximum', Duration.minutes(5)),
      'm365-trace-to-devo\'s reconciliation pass dropped a span without its second look (metric ReconcileGapSeconds, log event reconcile_gap with the span and the reason): records Microsoft exposed there late were not sent. The reconciliation was behind by more than the API\'s lookback (a long pause, or a tick that kept failing): see docs/operations.md "Reconciliation falling behind".',
      {
        threshold: 0,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    // The scheduled audit (AuditHours > 0) found records Devo does not hold: any in 5 minutes.
    const auditMissing = alarm(
      'AuditMissingAlarm',
      tickMetric('AuditMissing', 'Sum', Duration.minutes(5)),
      'm365-trace-to-devo\'s scheduled audit found records Microsoft lists that Devo does not hold (metric AuditMissing, log event audit_hour with the hour and the counts): the relay accepted lines that did not arrive in the table. Run m365-trace-to-devo-cli audit --repair for those hours: see docs/operations.md "Audit and repair".',
      {
        threshold: 0,
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      },
    );
    (auditMissing.node.defaultChild as cloudwatch.CfnAlarm).cfnOptions.condition = createAuditAlarm;
    // One-minute periods, all of the last NoEventsAlarmMinutes breaching (N out of N): "no event
    // in the last N minutes" without arithmetic on the parameter. No tick, no data, no events:
    // missing data is breaching. Not created when NoEventsAlarmMinutes is 0.
    const noEvents = alarm(
      'NoEventsAlarm',
      tickMetric('EventsSent', 'Sum', Duration.minutes(1)),
      'm365-trace-to-devo sent no event to Devo for NoEventsAlarmMinutes minutes. Either the ticks do not run or fail (see ErrorsAlarm and the log group), or Microsoft returned no record for that stretch (a quiet tenant, or missing permissions on the trace API).',
      {
        evaluationPeriods: noEventsAlarmMinutes.valueAsNumber,
        datapointsToAlarm: noEventsAlarmMinutes.valueAsNumber,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      },
    );
    (noEvents.node.defaultChild as cloudwatch.CfnAlarm).cfnOptions.condition = createNoEventsAlarm;

    // ------------------------------------------------------------ outputs (as template.yaml)
    new CfnOutput(this, 'FunctionName', {
      description: 'The collector function (invoke it with events/backfill.json for a backfill)',
      value: this.function.functionName,
    });
    new CfnOutput(this, 'StateBucketName', {
      description: 'Bucket of the checkpoints and ledger objects (prefix m365-message-trace/)',
      value: this.bucket.bucketName,
    });
    new CfnOutput(this, 'SecretArn', { description: 'Secret to fill with scripts/make-secret', value: secretArn });
    new CfnOutput(this, 'LogGroupName', { description: "The function's log group", value: logGroup.logGroupName });
    new CfnOutput(this, 'DashboardName', {
      description: 'The CloudWatch dashboard (lag per tenant, events sent, failed ticks, throttling, details, audit)',
      value: dashboard.ref,
    });

    // False positives of the synth-time CloudFormation validation (template.yaml is linted
    // clean by cfn-lint, which follows the conditions):
    Validations.of(this).acknowledge(
      {
        id: 'CloudFormation-Validate::W1001',
        reason: 'SecretArn refers to Secret only in the CreateSecret branch of its Fn::If',
      },
      {
        id: 'CloudFormation-Validate::W1030',
        reason: 'AlarmActions/OKActions use AlarmTopicArn only when HasAlarmTopic (non-empty)',
      },
      {
        id: 'CloudFormation-Validate::W2509',
        reason: 'ExistingSecretArn is the ARN of a secret, not a secret value',
      },
    );
  }
}

/** Give a construct's CloudFormation resource the same logical ID as in template.yaml. */
function pinLogicalId(construct: Construct, logicalId: string): void {
  const child = construct.node.defaultChild;
  if (child === undefined) {
    throw new Error(`${construct.node.path} has no default CloudFormation resource`);
  }
  (child as unknown as { overrideLogicalId(id: string): void }).overrideLogicalId(logicalId);
}
