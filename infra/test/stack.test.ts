// Security and shape properties of the CDK stack, proven on the synthesized template.
// Synth only: the real RustFunction is used, with bundling skipped for every stack
// (context aws:cdk:bundling-stacks = []), so neither Docker, a Rust cross-build, AWS
// credentials nor the network is needed.
import { App } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { M365TraceToDevoStack, MEMORY_MB, STATE_KEY, TIMEOUT_SECONDS } from '../lib/stack';

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

  test('reserved concurrency is 1', () => {
    template.hasResourceProperties('AWS::Lambda::Function', { ReservedConcurrentExecutions: 1 });
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
        'CLOUD',
        'DELAY_SECONDS',
        'DEVO_ADDRESS',
        'DEVO_TAG',
        'HISTORIC_DAYS',
        'LOG_LEVEL',
        'MAX_WINDOW_SECONDS',
        'PAGE_SIZE',
        'RESET_BEFORE',
        'SECRET_ID',
        'STATE_BUCKET',
        'STATE_KEY',
        'TRACE_API',
      ].sort(),
    );
    expect(vars.STATE_KEY).toBe(STATE_KEY);
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
  test('one role, assumable by Lambda only, no managed policies, no separate policies', () => {
    template.resourceCountIs('AWS::IAM::Role', 1);
    template.resourceCountIs('AWS::IAM::Policy', 0);
    template.resourceCountIs('AWS::IAM::ManagedPolicy', 0);
    const [, role] = resourcesOfType('AWS::IAM::Role')[0];
    expect(role.Properties.ManagedPolicyArns).toBeUndefined();
    expect(role.Properties.AssumeRolePolicyDocument.Statement).toEqual([
      { Action: 'sts:AssumeRole', Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' } },
    ]);
    template.hasResourceProperties('AWS::Lambda::Function', { Role: { 'Fn::GetAtt': ['FunctionRole', 'Arn'] } });
  });

  test('exactly the four statements: logs, checkpoint objects, prefix listing, one secret', () => {
    const statements = allPolicyStatements();
    expect(statements.map((s) => s.Sid).sort()).toEqual(
      ['CheckpointListForNotFound', 'CheckpointObjects', 'Logs', 'ReadCredentials'].sort(),
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
      if (services.has('secretsmanager')) expect(JSON.stringify(s.Resource)).toMatch(/Secret/);
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
    expect(params.HistoricDays.Default).toBe(10);
    expect(params.MaxWindowSeconds.Default).toBe(21600);
    expect(params.PageSize.Default).toBe(5000);
    expect(params.ResetBefore.Default).toBe('');
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
