// The m365-trace-to-devo stack, as ../template.yaml (SAM) describes it.
//
// Same CloudFormation parameters (names, defaults, allowed values), same logical IDs for the
// resources that matter, same security properties. `scripts/compare-templates` fails when the
// two drift (runtime, architecture, environment variable names, IAM statements, reserved
// concurrency, schedule, bucket settings); the Jest tests under test/ prove the security
// properties on the synthesized template.
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

/** Name of the Lambda binary in the repository's Cargo package. */
export const BINARY_NAME = 'm365-trace-to-devo';
/** Every checkpoint (scheduled and backfill) lives under this prefix of the state bucket. */
export const STATE_PREFIX = 'm365-message-trace/';
export const STATE_KEY = `${STATE_PREFIX}checkpoint.json`;
/** Function timeout: below the 5-minute schedule period so that ticks never overlap. */
export const TIMEOUT_SECONDS = 240;
/** Memory: headroom for one 5000-record Graph page in memory, and twice the CPU of 128 MB. */
export const MEMORY_MB = 256;
const SECRET_PLACEHOLDER = '{"placeholder":"store the real value with scripts/make-secret"}';

export interface M365TraceToDevoStackProps extends StackProps {
  /**
   * Cargo.toml of the package that holds the `m365-trace-to-devo` binary.
   * @default the repository root's Cargo.toml
   */
  readonly manifestPath?: string;
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
        'Optional RFC 3339 time. When set, a checkpoint older than this is ignored and collection restarts from it. Leave empty in normal operation.',
      allowedPattern: '^$|^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+(Z|[+-][0-9]{2}:[0-9]{2})$',
    });
    const existingSecretArn = new CfnParameter(this, 'ExistingSecretArn', {
      type: 'String',
      default: '',
      description:
        'Optional ARN of an existing Secrets Manager secret holding the credentials JSON. Empty: the stack creates a secret with a placeholder value that you then fill with scripts/make-secret.',
      allowedPattern: '^$|^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$',
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
      default: '',
      description: 'Optional SNS topic ARN notified by the alarms. Empty - the alarms have no action.',
      allowedPattern: '^$|^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:.+$',
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
      TRACE_API: traceApi.valueAsString,
      CLOUD: cloud.valueAsString,
      DELAY_SECONDS: delaySeconds.valueAsString,
      HISTORIC_DAYS: historicDays.valueAsString,
      MAX_WINDOW_SECONDS: maxWindowSeconds.valueAsString,
      PAGE_SIZE: pageSize.valueAsString,
      LOG_LEVEL: logLevel.valueAsString,
      RESET_BEFORE: Fn.conditionIf(hasResetBefore.logicalId, resetBefore.valueAsString, Aws.NO_VALUE).toString(),
    };

    this.function = new RustFunction(this, 'Function', {
      manifestPath: props.manifestPath ?? path.join(__dirname, '..', '..', 'Cargo.toml'),
      binaryName: BINARY_NAME,
      architecture: lambda.Architecture.ARM_64,
      bundling: { architecture: lambda.Architecture.ARM_64 },
      description: 'Microsoft 365 message trace -> Devo (one tick per invocation)',
      memorySize: MEMORY_MB,
      timeout: Duration.seconds(TIMEOUT_SECONDS),
      reservedConcurrentExecutions: 1,
      role,
      logGroup,
      // A failed or throttled scheduled tick is not retried: the next tick resumes from the checkpoint.
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

    // ------------------------------------------------------------ alarms
    const alarmActions = Fn.conditionIf(hasAlarmTopic.logicalId, [alarmTopicArn.valueAsString], Aws.NO_VALUE);
    const alarm = (id: string, metric: cloudwatch.Metric, description: string, evaluationPeriods: number, datapointsToAlarm: number) => {
      const a = new cloudwatch.Alarm(this, id, {
        alarmDescription: description,
        metric,
        threshold: 1,
        evaluationPeriods,
        datapointsToAlarm,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
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
      3,
      2,
    );
    alarm(
      'ThrottlesAlarm',
      this.function.metricThrottles({ period: Duration.minutes(5), statistic: 'Sum' }),
      'm365-trace-to-devo was throttled - a tick (or a backfill) was still running when the next one came.',
      1,
      1,
    );

    // ------------------------------------------------------------ outputs (as template.yaml)
    new CfnOutput(this, 'FunctionName', {
      description: 'The collector function (invoke it with events/backfill.json for a backfill)',
      value: this.function.functionName,
    });
    new CfnOutput(this, 'StateBucketName', {
      description: 'Bucket of the checkpoints (prefix m365-message-trace/)',
      value: this.bucket.bucketName,
    });
    new CfnOutput(this, 'SecretArn', { description: 'Secret to fill with scripts/make-secret', value: secretArn });
    new CfnOutput(this, 'LogGroupName', { description: "The function's log group", value: logGroup.logGroupName });

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
