// The CDK app: `cdk deploy -c stage=dev|prod`. The Lambda binaries come from
// scripts/package-lambdas.sh (target/lambda/<bin>/bootstrap).

import * as path from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import { PublishingStack, Stage } from '../lib/publishing-stack';

const app = new App();
const stage = (app.node.tryGetContext('stage') ?? 'dev') as string;
if (stage !== 'dev' && stage !== 'prod') {
  throw new Error(`stage must be dev or prod, not ${stage}`);
}
const lambdas = path.join(__dirname, '..', '..', 'target', 'lambda');
new PublishingStack(app, `Publishing-${stage}`, {
  stage: stage as Stage,
  writerCode: app.node.tryGetContext('writerCode') ?? path.join(lambdas, 'writer'),
  projectorCode: app.node.tryGetContext('projectorCode') ?? path.join(lambdas, 'projector'),
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
