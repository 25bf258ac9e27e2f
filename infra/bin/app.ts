#!/usr/bin/env node
// CDK app: `npx cdk deploy` builds the Rust binary with cargo-lambda (arm64) and deploys the
// stack. `-c stackName=NAME` changes the stack name; `-c skipBundling=true` synthesizes
// without building (inspection only: such a template cannot be deployed).
import { App } from 'aws-cdk-lib';
import { M365TraceToDevoStack } from '../lib/stack';

const app = new App();
const skip = app.node.tryGetContext('skipBundling');
if (skip === true || skip === 'true') {
  app.node.setContext('aws:cdk:bundling-stacks', []);
}
const stackName: string = app.node.tryGetContext('stackName') ?? 'm365-trace-to-devo';

new M365TraceToDevoStack(app, 'M365TraceToDevo', {
  stackName,
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
