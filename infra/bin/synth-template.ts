// Prints the stack's CloudFormation template as JSON, synthesized WITHOUT bundling (no Rust
// build, no Docker, no AWS credentials). Used by scripts/compare-templates:
//   npx ts-node bin/synth-template.ts > cdk.out/template.json
import { App } from 'aws-cdk-lib';
import { M365TraceToDevoStack } from '../lib/stack';

const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
const stack = new M365TraceToDevoStack(app, 'M365TraceToDevo', { stackName: 'm365-trace-to-devo' });
const assembly = app.synth();
process.stdout.write(JSON.stringify(assembly.getStackArtifact(stack.artifactId).template, null, 1) + '\n');
