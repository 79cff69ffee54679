// Offline tests of the synthesized template: every property the service relies on.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks, ServerlessChecks } from 'cdk-nag';
import {
  EVENT_SOURCE_GRANTS,
  Grants,
  loadFilters,
  loadPermissions,
  PROJECTOR_NAMESPACE,
  STAGE_DIMENSION,
  loadRuntimeFacts,
  loadTableDefinition,
  PublishingStack,
  Stage,
} from '../lib/publishing-stack';

const cdkJson = JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'cdk.json'), 'utf8'));
const fixtures = path.join(__dirname, 'fixtures');

function synth(stage: Stage): { app: App; stack: PublishingStack; template: Template } {
  // `new App()` does not read cdk.json: pass its context so flags match `cdk synth`.
  const app = new App({ context: cdkJson.context });
  const stack = new PublishingStack(app, `Test-${stage}`, {
    stage,
    writerCode: path.join(fixtures, 'writer'),
    projectorCode: path.join(fixtures, 'projector'),
  });
  return { app, stack, template: Template.fromStack(stack) };
}

const dev = synth('dev');
const table = loadTableDefinition();

function onlyResource(template: Template, type: string): any {
  const resources = Object.values(template.findResources(type));
  assert.equal(resources.length, 1, `one ${type}`);
  return resources[0];
}

test('the table is the one contracts defines', () => {
  const resource = onlyResource(dev.template, 'AWS::DynamoDB::Table');
  const props = resource.Properties;
  assert.deepEqual(props.KeySchema, [
    { AttributeName: table.partitionKey, KeyType: 'HASH' },
    { AttributeName: table.sortKey, KeyType: 'RANGE' },
  ]);
  const types = Object.fromEntries(props.AttributeDefinitions.map((a: any) => [a.AttributeName, a.AttributeType]));
  for (const name of [table.partitionKey, table.sortKey, table.gsi1.partitionKey, table.gsi1.sortKey]) {
    assert.equal(types[name], table.keyAttributeType, name);
  }
  assert.deepEqual(props.GlobalSecondaryIndexes, [
    {
      IndexName: table.gsi1.name,
      KeySchema: [
        { AttributeName: table.gsi1.partitionKey, KeyType: 'HASH' },
        { AttributeName: table.gsi1.sortKey, KeyType: 'RANGE' },
      ],
      Projection: { ProjectionType: table.gsi1.projection },
    },
  ]);
  assert.deepEqual(props.StreamSpecification, { StreamViewType: table.streamViewType });
  assert.deepEqual(props.TimeToLiveSpecification, { AttributeName: table.ttlAttribute, Enabled: true });
  assert.equal(props.BillingMode, table.billingMode);
  assert.deepEqual(props.PointInTimeRecoverySpecification, { PointInTimeRecoveryEnabled: true });
});

test('the stage decides deletion protection and removal', () => {
  const devTable = onlyResource(dev.template, 'AWS::DynamoDB::Table');
  assert.equal(devTable.Properties.DeletionProtectionEnabled, false);
  assert.equal(devTable.DeletionPolicy, 'Delete');
  const prodTable = onlyResource(synth('prod').template, 'AWS::DynamoDB::Table');
  assert.equal(prodTable.Properties.DeletionProtectionEnabled, true);
  assert.equal(prodTable.DeletionPolicy, 'Retain');
});

test('both functions are arm64 provided.al2023 binaries with 128 MB', () => {
  dev.template.resourcePropertiesCountIs(
    'AWS::Lambda::Function',
    { Runtime: 'provided.al2023', Architectures: ['arm64'], Handler: 'bootstrap', MemorySize: 128 },
    2,
  );
  dev.template.hasResourceProperties('AWS::Lambda::Function', {
    Environment: { Variables: Match.objectLike({ WRITE_MODE: 'stream' }) },
  });
});

test('write routes need the JWT authorizer, read routes do not', () => {
  dev.template.hasResourceProperties('AWS::ApiGatewayV2::Authorizer', { AuthorizerType: 'JWT' });
  const routes = Object.values(dev.template.findResources('AWS::ApiGatewayV2::Route')).map((r: any) => r.Properties);
  const byKey = Object.fromEntries(routes.map((r: any) => [r.RouteKey, r.AuthorizationType ?? 'NONE']));
  for (const key of [
    'PUT /topics/{topic}',
    'POST /topics/{topic}/posts',
    'PUT /topics/{topic}/posts/{post}/like',
    'DELETE /topics/{topic}/posts/{post}/like',
    'PUT /users/me',
    'GET /users/me',
  ]) {
    assert.equal(byKey[key], 'JWT', key);
  }
  for (const key of ['GET /topics/{topic}/posts', 'GET /topics/{topic}/posts/{post}', 'GET /users/{user}']) {
    assert.equal(byKey[key], 'NONE', key);
  }
  dev.template.resourceCountIs('AWS::Cognito::UserPool', 1);
});

test('requests to no route reach the writer, which answers them with its problem documents', () => {
  const routes = Object.values(dev.template.findResources('AWS::ApiGatewayV2::Route')).map((r: any) => r.Properties);
  const fallback = routes.find((r: any) => r.RouteKey === '$default');
  assert.ok(fallback, 'a $default route');
  assert.equal(fallback.AuthorizationType ?? 'NONE', 'NONE', 'no authorizer: the writer answers 404/405 and writes nothing');
  const writerRoute = routes.find((r: any) => r.RouteKey === 'GET /topics/{topic}/posts');
  assert.deepEqual(fallback.Target, writerRoute.Target, 'the same integration as every route: the writer');
});

test('the projector\'s metrics, alarms and dashboard are the stage\'s own', () => {
  for (const stage of ['dev', 'prod'] as Stage[]) {
    const template = stage === 'dev' ? dev.template : synth(stage).template;
    template.hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ STAGE: stage, TABLE_NAME: Match.anyValue() }) },
    });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties);
    const own = alarms.filter((a: any) => a.Namespace === PROJECTOR_NAMESPACE);
    assert.ok(own.length > 0, 'an alarm on the projector\'s own metrics');
    for (const alarm of own) {
      assert.deepEqual(alarm.Dimensions, [{ Name: STAGE_DIMENSION, Value: stage }], alarm.MetricName);
    }
    const dashboard = JSON.stringify(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]);
    assert.ok(dashboard.includes(`\\"${STAGE_DIMENSION}\\",\\"${stage}\\"`), `the dashboard reads the ${stage} stage`);
  }
});

test('the API stage throttles and writes access logs', () => {
  dev.template.hasResourceProperties('AWS::ApiGatewayV2::Stage', {
    StageName: '$default',
    DefaultRouteSettings: Match.objectLike({ ThrottlingRateLimit: 100, ThrottlingBurstLimit: 200 }),
    AccessLogSettings: Match.objectLike({ DestinationArn: Match.anyValue() }),
  });
});

test('the projector reads the stream with partial batch responses, filters and a failure queue', () => {
  const mapping = onlyResource(dev.template, 'AWS::Lambda::EventSourceMapping').Properties;
  // What the simulation's event source follows (contracts/src/event_source.rs via runtime.json).
  const source = loadRuntimeFacts().eventSource;
  assert.equal(mapping.BatchSize, source.batchSize);
  assert.equal(mapping.MaximumBatchingWindowInSeconds, source.maxBatchingWindowSeconds);
  assert.equal(mapping.BisectBatchOnFunctionError, source.bisectBatchOnError);
  assert.equal(mapping.MaximumRetryAttempts, source.retryAttempts);
  assert.equal(mapping.MaximumRecordAgeInSeconds, source.maxRecordAgeSeconds);
  assert.equal(mapping.ParallelizationFactor, source.parallelizationFactor);
  assert.ok(source.reportBatchItemFailures);
  assert.deepEqual(mapping.FunctionResponseTypes, ['ReportBatchItemFailures']);
  assert.ok(mapping.MaximumBatchingWindowInSeconds <= 1, 'a batching window of at most 1 s');
  assert.equal(mapping.StartingPosition, 'TRIM_HORIZON');
  assert.ok(mapping.DestinationConfig.OnFailure.Destination, 'an on-failure destination');
  const patterns = mapping.FilterCriteria.Filters.map((f: any) => JSON.parse(f.Pattern));
  assert.deepEqual(patterns, loadFilters().map((f) => f.pattern), 'the patterns of infra/filters.json, in order');
  assert.deepEqual(
    loadFilters().map((f) => f.work),
    ['LikeAdded', 'LikeRemoved', 'DeltaAdded', 'StampDue'],
  );
  // Lambda's `exists` matches leaf nodes only: it must sit under a type key, never on an attribute.
  const existsOnLeaves = (node: unknown, parent: string): void => {
    if (Array.isArray(node)) {
      for (const test of node) {
        if (test && typeof test === 'object' && 'exists' in test) {
          assert.ok(['S', 'N', 'B', 'BOOL', 'NULL', 'M', 'L', 'SS', 'NS', 'BS'].includes(parent), `exists under ${parent}`);
        }
      }
    } else if (node && typeof node === 'object') {
      for (const [key, value] of Object.entries(node)) existsOnLeaves(value, key);
    }
  };
  for (const pattern of patterns) existsOnLeaves(pattern, '');
  const stampDue: any = patterns.find((p: any) => p.eventName[0] === 'MODIFY');
  assert.deepEqual(stampDue.dynamodb.NewImage.stampDue, { N: [{ exists: true }] });
  dev.template.hasResourceProperties('AWS::SQS::Queue', { MessageRetentionPeriod: 14 * 24 * 3600 });
});

test('alarms watch iterator age, errors, the failure queue and quarantined records', () => {
  const alarms = Object.values(dev.template.findResources('AWS::CloudWatch::Alarm')).map((a: any) => a.Properties);
  const metrics = alarms.map((a: any) => a.MetricName);
  assert.ok(metrics.includes('IteratorAge'));
  assert.ok(metrics.includes('Errors'));
  assert.ok(metrics.includes('ApproximateNumberOfMessagesVisible'));
  const quarantined = alarms.find((a: any) => a.MetricName === 'Quarantined');
  assert.equal(quarantined?.Namespace, 'Publishing/Projector', 'the projector\'s own metric');
});

/** Every action a role's inline policies allow, with its resources. */
function statements(template: Template, roleLogicalIdPrefix: string): any[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy')) as any[];
  return policies
    .filter((p) => p.Properties.Roles.some((r: any) => r.Ref.startsWith(roleLogicalIdPrefix)))
    .flatMap((p) => p.Properties.PolicyDocument.Statement);
}

const actionsOf = (s: any): string[] => [s.Action].flat();

const permissions = loadPermissions();

/** A statement's resource as a kind of infra/permissions.json. */
function kindOf(resource: unknown): string {
  const text = JSON.stringify(resource);
  if (text.includes('/index/')) return 'index';
  if (text.includes('StreamArn')) return 'stream';
  if (text === '"*"') return '*';
  return 'table';
}

/** The DynamoDB actions of statements, per resource kind, sorted. */
function dynamoGrants(all: any[]): Record<string, string[]> {
  const grants: Record<string, Set<string>> = {};
  for (const s of all) {
    for (const action of actionsOf(s).filter((a) => a.startsWith('dynamodb:'))) {
      (grants[kindOf(s.Resource)] ??= new Set()).add(action);
    }
  }
  return Object.fromEntries(Object.entries(grants).map(([k, v]) => [k, [...v].sort()]));
}

/** Grants merged and sorted, as dynamoGrants reports them. */
function merged(...grants: Grants[]): Record<string, string[]> {
  const out: Record<string, Set<string>> = {};
  for (const g of grants) {
    for (const [kind, actions] of Object.entries(g)) {
      for (const a of actions ?? []) (out[kind] ??= new Set()).add(a);
    }
  }
  return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, [...v].sort()]));
}

test('each role grants exactly the DynamoDB actions its code was recorded calling', () => {
  assert.deepEqual(dynamoGrants(statements(dev.template, 'WriterRole')), merged(permissions.writer));
  assert.deepEqual(
    dynamoGrants(statements(dev.template, 'ProjectorRole')),
    { ...merged(permissions.projector, EVENT_SOURCE_GRANTS), '*': ['dynamodb:ListStreams'] },
  );
  const operator = onlyResource(dev.template, 'AWS::IAM::ManagedPolicy');
  assert.deepEqual(dynamoGrants(operator.Properties.PolicyDocument.Statement), merged(permissions.operator));
  // The deployed writer needs UpdateItem only to delete a writer-counted like with its decrement,
  // and the projector reads the likes it marks: both are in the recorded calls.
  assert.ok(permissions.writer.table?.includes('dynamodb:UpdateItem'));
  assert.ok(permissions.projector.table?.includes('dynamodb:BatchGetItem'));
});

test('function timeouts leave each binary time to answer before Lambda stops it', () => {
  const runtime = loadRuntimeFacts();
  const functions = Object.values(dev.template.findResources('AWS::Lambda::Function')) as any[];
  const writer = functions.find((f) => f.Properties.Environment?.Variables?.WRITE_MODE);
  const projector = functions.find((f) => f !== writer && f.Properties.Environment?.Variables?.TABLE_NAME);
  assert.ok(writer.Properties.Timeout >= runtime.writerRequestBudgetSeconds + 1, 'the writer answers 503 in time');
  assert.ok(
    projector.Properties.Timeout >= runtime.projectorDeadlineMarginSeconds * 5,
    'the projector has time to write before its margin',
  );
});

test('the writer signs cursors with the stack\'s secret, which only its role may read', () => {
  const secret = Object.keys(dev.template.findResources('AWS::SecretsManager::Secret'));
  assert.equal(secret.length, 1, 'one secret');
  const writer = Object.values(dev.template.findResources('AWS::Lambda::Function')).find((f: any) =>
    f.Properties.Environment?.Variables?.WRITE_MODE,
  ) as any;
  assert.deepEqual(writer.Properties.Environment.Variables.CURSOR_SECRET_ARN, { Ref: secret[0] });
  const reads = statements(dev.template, 'WriterRole').filter((s) =>
    actionsOf(s).includes('secretsmanager:GetSecretValue'),
  );
  assert.equal(reads.length, 1);
  assert.deepEqual(reads[0].Resource, { Ref: secret[0] });
  const projectorReads = statements(dev.template, 'ProjectorRole').flatMap(actionsOf);
  assert.ok(!projectorReads.some((a) => a.startsWith('secretsmanager:')), 'only the writer reads it');
});

test('IAM is least privilege: explicit statements, no managed policies on roles, no index writes', () => {
  const roles = Object.values(dev.template.findResources('AWS::IAM::Role')) as any[];
  for (const role of roles.filter((r) => JSON.stringify(r).includes('lambda.amazonaws.com'))) {
    assert.equal(role.Properties.ManagedPolicyArns, undefined, 'no managed policies on function roles');
  }
  const writes = /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem|\*)$/;
  const operator = onlyResource(dev.template, 'AWS::IAM::ManagedPolicy').Properties.PolicyDocument.Statement;
  for (const s of [...statements(dev.template, 'WriterRole'), ...statements(dev.template, 'ProjectorRole'), ...operator]) {
    assert.ok(!actionsOf(s).includes('dynamodb:*'), 'no wildcard actions');
    if (!actionsOf(s).some((a) => writes.test(a))) continue;
    const resources = JSON.stringify(s.Resource);
    assert.ok(!resources.includes('/index/'), `write actions on an index: ${resources}`);
    assert.notEqual(s.Resource, '*', 'write actions name their resource');
  }
});

for (const stage of ['dev', 'prod'] as Stage[]) {
  test(`cdk-nag AwsSolutions and ServerlessChecks pass (${stage}), every acknowledgement justified in code`, () => {
    // A fresh app: one already synthesized (Template.fromStack) would not validate again.
    const app = new App({ context: cdkJson.context });
    new PublishingStack(app, `Nag-${stage}`, {
      stage,
      writerCode: path.join(fixtures, 'writer'),
      projectorCode: path.join(fixtures, 'projector'),
    });
    Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new ServerlessChecks(app));
    const assembly = app.synth();
    const report = JSON.parse(fs.readFileSync(path.join(assembly.directory, 'validation-report.json'), 'utf8'));
    const text = JSON.stringify(report);
    const errors = (text.match(/"severity":"error"/g) ?? []).length;
    assert.equal(errors, 0, JSON.stringify(report, null, 1).slice(0, 4000));
  });
}

test('a dashboard shows the projection, the API and throttles; alarms watch 5xx and throttles', () => {
  const dashboard = onlyResource(dev.template, 'AWS::CloudWatch::Dashboard');
  const body = JSON.stringify(dashboard.Properties.DashboardBody);
  for (const metric of ['IteratorAge', 'LagMs', 'Applied', 'Redundant', 'Quarantined', 'Failed', 'Cancelled', '5xx', 'Latency', 'WriteThrottleEvents', 'ReadThrottleEvents', 'GlobalSecondaryIndexName']) {
    assert.ok(body.includes(metric), `the dashboard shows ${metric}`);
  }
  const alarms = Object.keys(dev.template.findResources('AWS::CloudWatch::Alarm'));
  for (const name of ['ApiServerErrors', 'TableThrottles', 'IndexThrottles']) {
    assert.ok(alarms.some((id) => id.startsWith(name)), `alarm ${name}`);
  }
});

test('every checkov acknowledgement carries its reason', () => {
  const resources = Object.values(dev.template.toJSON().Resources) as any[];
  const skips = resources.flatMap((r) => r.Metadata?.checkov?.skip ?? []);
  assert.ok(skips.length > 0);
  for (const skip of skips) {
    assert.match(skip.id, /^CKV_AWS_\d+$/);
    assert.ok(skip.comment.length > 40, `${skip.id} is acknowledged with a reason`);
  }
});
