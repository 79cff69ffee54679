// The publishing service on AWS: one DynamoDB table, the writer Lambda behind an HTTP API with a
// JWT authorizer, and the projector Lambda on the table's stream.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { CfnElement, CfnOutput, CfnResource, Duration, RemovalPolicy, Stack, StackProps, Validations } from 'aws-cdk-lib';
import { AccessLogFormat } from 'aws-cdk-lib/aws-apigateway';
import * as apigw from 'aws-cdk-lib/aws-apigatewayv2';
import { HttpUserPoolAuthorizer } from 'aws-cdk-lib/aws-apigatewayv2-authorizers';
import { HttpLambdaIntegration } from 'aws-cdk-lib/aws-apigatewayv2-integrations';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cognito from 'aws-cdk-lib/aws-cognito';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { DynamoEventSource, SqsDlq } from 'aws-cdk-lib/aws-lambda-event-sources';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/** The table definition written by `contracts` (contracts/table.json): the one source of truth. */
export interface TableDefinition {
  partitionKey: string;
  sortKey: string;
  gsi1: { name: string; partitionKey: string; sortKey: string; projection: string };
  keyAttributeType: string;
  streamViewType: string;
  ttlAttribute: string;
  billingMode: string;
}

export function loadTableDefinition(
  file = path.join(__dirname, '..', '..', 'contracts', 'table.json'),
): TableDefinition {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as TableDefinition;
}

/** What one deployed caller's code calls, per resource (infra/permissions.json). */
export type Grants = Partial<Record<'table' | 'index' | 'stream', string[]>>;

/**
 * The DynamoDB actions each deployed caller makes, recorded from the calls of the integration
 * tests (bench::permissions; a test fails when the file is stale). The roles are built from
 * it: nothing missing, nothing extra.
 */
export interface Permissions {
  writer: Grants;
  projector: Grants;
  operator: Grants;
}

export function loadPermissions(file = path.join(__dirname, '..', 'permissions.json')): Permissions {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as Permissions;
}

/** Timing facts of the binaries (infra/runtime.json, written from their constants). */
export interface RuntimeFacts {
  writerRequestBudgetSeconds: number;
  projectorDeadlineMarginSeconds: number;
  /** The projector's timeout: the time one batch may take, locally too. */
  projectorBatchSeconds: number;
  /** The projector's event source mapping (contracts/src/event_source.rs). */
  eventSource: {
    batchSize: number;
    maxBatchingWindowSeconds: number;
    bisectBatchOnError: boolean;
    retryAttempts: number;
    maxRecordAgeSeconds: number;
    parallelizationFactor: number;
    reportBatchItemFailures: boolean;
  };
}

export function loadRuntimeFacts(file = path.join(__dirname, '..', 'runtime.json')): RuntimeFacts {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as RuntimeFacts;
}

/** The projector's metrics (EMF) and the dimension that tells stages apart in them. */
export const PROJECTOR_NAMESPACE = 'Publishing/Projector';
export const STAGE_DIMENSION = 'Stage';

/** Time a function keeps beyond its code's own limit, to answer. */
export const ANSWER_MARGIN_SECONDS = 2;

/** What Lambda's event source mapping itself calls with the projector's role. */
export const EVENT_SOURCE_GRANTS: Grants = {
  stream: ['dynamodb:DescribeStream', 'dynamodb:GetRecords', 'dynamodb:GetShardIterator'],
};

export type Stage = 'dev' | 'prod';

export interface PublishingStackProps extends StackProps {
  stage: Stage;
  /** Folders holding each function's `bootstrap` (cargo lambda's target/lambda/<bin>). */
  writerCode: string;
  projectorCode: string;
  table?: TableDefinition;
  permissions?: Permissions;
}

/** One kind of the projector's work and the event filter pattern of its records. */
export interface WorkFilter {
  work: string;
  pattern: Record<string, unknown>;
}

/**
 * The projector's event filters (infra/filters.json, written by `contracts::filters` from the
 * rules its decoder checks; a test fails when the file is stale). Every `exists` names the
 * attribute's type key: Lambda's `exists` matches leaf nodes only.
 */
export function loadFilters(file = path.join(__dirname, '..', 'filters.json')): WorkFilter[] {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as WorkFilter[];
}

/**
 * Acknowledge a checkov finding on `construct`'s CloudFormation resource, with the reason
 * (checkov reads `Metadata.checkov.skip`; each acknowledgement carries its comment).
 */
export function acknowledgeCheckov(construct: Construct, id: string, reason: string): void {
  const resource = construct.node.defaultChild as CfnResource;
  const current = (resource.getMetadata('checkov') as { skip: { id: string; comment: string }[] }) ?? { skip: [] };
  resource.addMetadata('checkov', { skip: [...current.skip, { id, comment: reason }] });
}

export class PublishingStack extends Stack {
  readonly table: dynamodb.Table;
  readonly writer: lambda.Function;
  readonly projector: lambda.Function;
  readonly api: apigw.HttpApi;
  readonly deadLetters: sqs.Queue;
  readonly operatorPolicy: iam.ManagedPolicy;
  readonly cursorSecret: secretsmanager.Secret;
  readonly stage: Stage;

  constructor(scope: Construct, id: string, props: PublishingStackProps) {
    super(scope, id, props);
    this.stage = props.stage;
    const prod = props.stage === 'prod';
    const def = props.table ?? loadTableDefinition();
    const removalPolicy = prod ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.table = new dynamodb.Table(this, 'Table', {
      partitionKey: { name: def.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: def.sortKey, type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      stream: dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
      timeToLiveAttribute: def.ttlAttribute,
      deletionProtection: prod,
      removalPolicy,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: def.gsi1.name,
      partitionKey: { name: def.gsi1.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: def.gsi1.sortKey, type: dynamodb.AttributeType.STRING },
      projectionType: dynamodb.ProjectionType.ALL,
    });
    const tableArn = this.table.tableArn;
    const arns = {
      table: tableArn,
      index: `${tableArn}/index/${def.gsi1.name}`,
      stream: this.table.tableStreamArn!,
    };
    const permissions = props.permissions ?? loadPermissions();
    const runtime = loadRuntimeFacts();
    /** One statement per resource, with exactly the actions the grants name. */
    const statementsFor = (sid: string, ...grants: Grants[]): iam.PolicyStatement[] =>
      (['table', 'index', 'stream'] as const).flatMap((kind) => {
        const actions = [...new Set(grants.flatMap((g) => g[kind] ?? []))].sort();
        if (actions.length === 0) return [];
        const name = kind[0].toUpperCase() + kind.slice(1);
        return [new iam.PolicyStatement({ sid: `${sid}${name}`, actions, resources: [arns[kind]] })];
      });

    // Writer: reads and appends (and deletes a writer-counted like with its decrement).
    const writerLogs = this.logGroup('WriterLogs', removalPolicy);
    const writerRole = this.functionRole('WriterRole', writerLogs, statementsFor('Writer', permissions.writer));
    // One key signs every execution environment's page cursors; the writer reads it at start
    // and refuses to start without it.
    this.cursorSecret = new secretsmanager.Secret(this, 'CursorSecret', {
      description: 'The key that signs the API\'s page cursors.',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy,
    });
    this.cursorSecret.grantRead(writerRole);
    Validations.of(this.cursorSecret).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason:
        'Rotating the cursor key only invalidates the page cursors clients hold; rotate by updating the secret and restarting the writer (docs/operations.md).',
    });
    this.writer = new lambda.Function(this, 'Writer', {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.writerCode),
      memorySize: 128,
      // The writer answers 503 when its request budget is spent; the function outlasts it.
      timeout: Duration.seconds(runtime.writerRequestBudgetSeconds + ANSWER_MARGIN_SECONDS),
      role: writerRole,
      logGroup: writerLogs,
      environment: {
        TABLE_NAME: this.table.tableName,
        WRITE_MODE: 'stream',
        CURSOR_SECRET_ARN: this.cursorSecret.secretArn,
        RUST_LOG: 'info',
      },
    });

    // The API: reads are public, writes need a Cognito JWT.
    const users = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: true,
      signInAliases: { email: true },
      passwordPolicy: { minLength: 12, requireDigits: true, requireLowercase: true, requireUppercase: true, requireSymbols: true },
      mfa: cognito.Mfa.OPTIONAL,
      mfaSecondFactor: { sms: false, otp: true },
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
      removalPolicy,
    });
    Validations.of(users).acknowledge({
      id: 'AwsSolutions-COG2',
      reason: 'MFA is offered (TOTP) but optional: readers and writers of a public blog sign up freely.',
    });
    const appClient = users.addClient('Web', { authFlows: { userSrp: true } });
    const authorizer = new HttpUserPoolAuthorizer('Jwt', users, { userPoolClients: [appClient] });
    const integration = new HttpLambdaIntegration('WriterIntegration', this.writer);
    this.api = new apigw.HttpApi(this, 'Api', { createDefaultStage: false });
    const accessLogs = this.logGroup('ApiAccessLogs', removalPolicy);
    new apigw.HttpStage(this, 'DefaultStage', {
      httpApi: this.api,
      stageName: '$default',
      autoDeploy: true,
      throttle: { rateLimit: prod ? 1000 : 100, burstLimit: prod ? 2000 : 200 },
      accessLogSettings: {
        destination: new apigw.LogGroupLogDestination(accessLogs),
        format: AccessLogFormat.custom(
          JSON.stringify({
            requestId: '$context.requestId',
            routeKey: '$context.routeKey',
            status: '$context.status',
            latencyMs: '$context.responseLatency',
            ip: '$context.identity.sourceIp',
          }),
        ),
      },
    });
    const write = (method: apigw.HttpMethod, routePath: string) =>
      this.api.addRoutes({ path: routePath, methods: [method], integration, authorizer });
    const read = (routePath: string) =>
      this.api.addRoutes({ path: routePath, methods: [apigw.HttpMethod.GET], integration });
    write(apigw.HttpMethod.PUT, '/topics/{topic}');
    write(apigw.HttpMethod.POST, '/topics/{topic}/posts');
    write(apigw.HttpMethod.PUT, '/topics/{topic}/posts/{post}/like');
    write(apigw.HttpMethod.DELETE, '/topics/{topic}/posts/{post}/like');
    write(apigw.HttpMethod.PUT, '/users/me');
    write(apigw.HttpMethod.GET, '/users/me');
    read('/topics/{topic}/posts');
    read('/topics/{topic}/posts/{post}');
    read('/topics/{topic}/posts/{post}/likes');
    read('/users/{user}');
    read('/openapi.json');
    // Every other request reaches the writer too, so clients get its 404 and 405 problem
    // documents (application/problem+json), not API Gateway's own body. It runs no write:
    // the writer takes the caller from the authorizer only, and this route has none.
    new apigw.HttpRoute(this.api, 'DefaultRoute', {
      httpApi: this.api,
      routeKey: apigw.HttpRouteKey.DEFAULT,
      integration,
    });

    // Projector: counts and stamps likes, writes tombstones and quarantined records.
    this.deadLetters = new sqs.Queue(this, 'ProjectorFailures', {
      retentionPeriod: Duration.days(14),
      enforceSSL: true,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      removalPolicy,
    });
    Validations.of(this.deadLetters).acknowledge({
      id: 'AwsSolutions-SQS3',
      reason: "This queue is itself the dead-letter destination of the projector's event source mapping.",
    });
    const projectorLogs = this.logGroup('ProjectorLogs', removalPolicy);
    const projectorRole = this.functionRole('ProjectorRole', projectorLogs, [
      ...statementsFor('Projector', permissions.projector, EVENT_SOURCE_GRANTS),
      new iam.PolicyStatement({ sid: 'ListStreams', actions: ['dynamodb:ListStreams'], resources: ['*'] }),
      new iam.PolicyStatement({ sid: 'FailureDestination', actions: ['sqs:SendMessage', 'sqs:GetQueueAttributes', 'sqs:GetQueueUrl'], resources: [this.deadLetters.queueArn] }),
    ]);
    Validations.of(projectorRole).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'dynamodb:ListStreams does not support resource-level permissions; every other statement names its resource.',
    });
    this.projector = new lambda.Function(this, 'Projector', {
      runtime: lambda.Runtime.PROVIDED_AL2023,
      architecture: lambda.Architecture.ARM_64,
      handler: 'bootstrap',
      code: lambda.Code.fromAsset(props.projectorCode),
      memorySize: 128,
      // The projector stops writing its deadline margin before this and answers a partial
      // batch response.
      timeout: Duration.seconds(runtime.projectorBatchSeconds),
      role: projectorRole,
      logGroup: projectorLogs,
      environment: { TABLE_NAME: this.table.tableName, STAGE: props.stage, RUST_LOG: 'info' },
    });
    // The mapping's settings are contracts/src/event_source.rs's, through runtime.json: the
    // simulation's event source follows the same. The window trades lag for coalescing (a
    // post's likes in one batch share counter writes; docs/benchmarks.md). With a
    // parallelization factor above 1, Lambda processes a shard in concurrent batches, keeping
    // order only per partition key (per item); the projection tolerates it, since every write
    // is conditioned on the current state of its item and concurrent transactions on a
    // counter are retried.
    const source = runtime.eventSource;
    this.projector.addEventSource(
      new DynamoEventSource(this.table, {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: source.batchSize,
        maxBatchingWindow: Duration.seconds(source.maxBatchingWindowSeconds),
        bisectBatchOnError: source.bisectBatchOnError,
        retryAttempts: source.retryAttempts,
        maxRecordAge: Duration.seconds(source.maxRecordAgeSeconds),
        reportBatchItemFailures: source.reportBatchItemFailures,
        onFailure: new SqsDlq(this.deadLetters),
        filters: loadFilters().map((f) => lambda.FilterCriteria.filter(f.pattern)),
        parallelizationFactor: source.parallelizationFactor,
      }),
    );

    // Alarms: projection falling behind, failing, or giving records up.
    new cloudwatch.Alarm(this, 'ProjectorIteratorAge', {
      alarmDescription: 'The projector is more than 60 s behind the stream: counts are stale.',
      metric: this.projector.metric('IteratorAge', { statistic: 'Maximum', period: Duration.minutes(1) }),
      threshold: 60_000,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'ProjectorErrors', {
      alarmDescription: 'Projector invocations fail as a whole.',
      metric: this.projector.metricErrors({ period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'ProjectorDeadLetters', {
      alarmDescription: 'Stream batches gave up after retries: replay their time range (docs/operations.md).',
      metric: this.deadLetters.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(5) }),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'ProjectorQuarantined', {
      alarmDescription:
        'Stream records could not be decoded and were quarantined in the table: inspect, fix, replay (docs/operations.md).',
      metric: this.projectorMetric('Quarantined', 'Sum', Duration.minutes(5)),
      threshold: 1,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'WriterErrors', {
      alarmDescription: 'The writer function fails.',
      metric: this.writer.metricErrors({ period: Duration.minutes(5) }),
      threshold: 5,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    // Operators: replay, verify and rebuild, as a policy to attach to whoever runs them.
    this.operatorPolicy = new iam.ManagedPolicy(this, 'OperatorPolicy', {
      description: 'What projector replay, verify and rebuild call (infra/permissions.json, operator).',
      statements: statementsFor('Operator', permissions.operator),
    });
    new CfnOutput(this, 'OperatorPolicyArn', { value: this.operatorPolicy.managedPolicyArn });

    this.acknowledgeFindings();
    this.dashboardAndAlarms(def.gsi1.name);

    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG4',
      reason: 'Read routes are public by design (published posts), and so is $default, which the writer answers 404/405 without writing; every write route has the JWT authorizer.',
    });
    Validations.of(this.api).acknowledge({
      id: 'AwsSolutions-APIG1',
      reason: 'Access logging is configured on the explicit $default stage.',
    });
  }

  /** The checkov and cdk-nag findings this design answers by reason, not by change. */
  private acknowledgeFindings(): void {
    acknowledgeCheckov(
      this.table,
      'CKV_AWS_119',
      'Encrypted at rest with the AWS owned key; IAM scopes every caller to the actions it was recorded making, and a customer key would add a KMS cost per request.',
    );
    acknowledgeCheckov(
      this.cursorSecret,
      'CKV_AWS_149',
      'Encrypted with the account\'s aws/secretsmanager key; only the writer role may read it (a grant on this secret alone).',
    );
    acknowledgeCheckov(
      this.deadLetters,
      'CKV_AWS_27',
      'Encrypted at rest with SQS-managed keys (SSE-SQS); the messages hold only stream batch coordinates.',
    );
    for (const fn of [this.writer, this.projector]) {
      acknowledgeCheckov(
        fn,
        'CKV_AWS_117',
        'The function calls only AWS APIs (DynamoDB, Secrets Manager) over TLS with IAM; a VPC would add NAT or endpoints and cold-start time with nothing inside it to protect.',
      );
      acknowledgeCheckov(
        fn,
        'CKV_AWS_173',
        'The environment holds names and an ARN, no secret (the cursor key stays in Secrets Manager).',
      );
      acknowledgeCheckov(
        fn,
        'CKV_AWS_115',
        'Concurrency is bounded already (the API stage throttles the writer; shards times the parallelization factor bound the projector); a reservation would throttle a viral post\'s projection and fails deploys in accounts with a low concurrency quota.',
      );
      // X-Ray: the Rust SDK calls carry no X-Ray instrumentation, so traces would show only the
      // Lambda segment, which the duration metrics and the request-id-tagged JSON logs give.
      Validations.of(fn).acknowledge({
        id: 'Serverless-LambdaTracing',
        reason:
          'Decided against X-Ray: without instrumentation of the SDK calls a trace holds only the Lambda segment; request ids in API access logs, problem documents and function logs correlate a request end to end.',
      });
    }
    acknowledgeCheckov(
      this.writer,
      'CKV_AWS_116',
      'API Gateway invokes the writer synchronously: a failed request is answered, there is no event to keep.',
    );
    Validations.of(this.writer).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason: 'API Gateway invokes the writer synchronously: a failed request is answered, there is no event to keep.',
    });
    acknowledgeCheckov(
      this.projector,
      'CKV_AWS_116',
      'The event source mapping\'s on-failure destination (the ProjectorFailures queue) receives what the projector gives up; a function DLQ serves only asynchronous invocations.',
    );
    Validations.of(this.projector).acknowledge({
      id: 'Serverless-LambdaDLQ',
      reason:
        'The event source mapping\'s on-failure destination (the ProjectorFailures queue) receives what the projector gives up; a function DLQ serves only asynchronous invocations.',
    });
    Validations.of(this.deadLetters).acknowledge({
      id: 'Serverless-SQSRedrivePolicy',
      reason: 'This queue is itself the failure destination; its messages are replayed by operators (docs/operations.md).',
    });
  }

  /**
   * One of the projector's own metrics (EMF, namespace `Publishing/Projector`) for this stage:
   * the projector writes the `Stage` dimension from its STAGE variable, so stages sharing an
   * account keep their alarms and dashboards apart.
   */
  private projectorMetric(metricName: string, statistic: string, period: Duration): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: PROJECTOR_NAMESPACE,
      metricName,
      statistic,
      period,
      dimensionsMap: { [STAGE_DIMENSION]: this.stage },
    });
  }

  /** One dashboard of the projection and the API, and alarms on what needs an operator. */
  private dashboardAndAlarms(indexName: string): void {
    const minute = Duration.minutes(1);
    const projectorMetric = (metricName: string, statistic = 'Sum') => this.projectorMetric(metricName, statistic, minute);
    /** Read and write throttle events summed; `id` keeps the two expressions' metrics apart. */
    const throttles = (id: string, label: string, dimensionsMap: Record<string, string>) =>
      new cloudwatch.MathExpression({
        expression: `${id}Reads + ${id}Writes`,
        label,
        period: minute,
        usingMetrics: {
          [`${id}Reads`]: new cloudwatch.Metric({ namespace: 'AWS/DynamoDB', metricName: 'ReadThrottleEvents', dimensionsMap, statistic: 'Sum', period: minute }),
          [`${id}Writes`]: new cloudwatch.Metric({ namespace: 'AWS/DynamoDB', metricName: 'WriteThrottleEvents', dimensionsMap, statistic: 'Sum', period: minute }),
        },
      });
    const tableThrottles = throttles('table', 'throttled events (table)', { TableName: this.table.tableName });
    const indexThrottles = throttles('index', `throttled events (${indexName})`, {
      TableName: this.table.tableName,
      GlobalSecondaryIndexName: indexName,
    });
    const serverErrors = this.api.metricServerError({ period: Duration.minutes(5), statistic: 'Sum' });

    new cloudwatch.Dashboard(this, 'Dashboard', {
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Projection: iterator age and lag (ms)',
            left: [this.projector.metric('IteratorAge', { statistic: 'Maximum', period: minute })],
            right: [projectorMetric('LagMs', 'p99')],
          }),
          new cloudwatch.GraphWidget({
            title: 'Projected records',
            left: ['Applied', 'Redundant', 'Quarantined', 'Failed'].map((name) => projectorMetric(name)),
          }),
          new cloudwatch.GraphWidget({
            title: 'Cancelled counting transactions (billed in full)',
            left: [projectorMetric('Cancelled')],
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'API: 5xx and p99 latency (ms)',
            left: [this.api.metricServerError({ period: minute, statistic: 'Sum' })],
            right: [this.api.metricLatency({ period: minute, statistic: 'p99' })],
          }),
          new cloudwatch.GraphWidget({
            title: 'DynamoDB throttled events: table and GSI1',
            left: [tableThrottles, indexThrottles],
          }),
        ],
      ],
    });

    new cloudwatch.Alarm(this, 'ApiServerErrors', {
      alarmDescription: 'The API answers 5xx: DynamoDB unavailable or throttling (503), or a bug (500).',
      metric: serverErrors,
      threshold: 5,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'TableThrottles', {
      alarmDescription: 'DynamoDB throttles the table for 5 minutes: a hot partition (docs/operations.md).',
      metric: tableThrottles,
      threshold: 1,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    new cloudwatch.Alarm(this, 'IndexThrottles', {
      alarmDescription: `DynamoDB throttles ${indexName} for 5 minutes: a hot post's likers view (docs/operations.md).`,
      metric: indexThrottles,
      threshold: 1,
      evaluationPeriods: 5,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
  }

  private logGroup(id: string, removalPolicy: RemovalPolicy): logs.LogGroup {
    const group = new logs.LogGroup(this, id, { retention: logs.RetentionDays.ONE_MONTH, removalPolicy });
    acknowledgeCheckov(
      group,
      'CKV_AWS_158',
      'CloudWatch Logs encrypts every log group at rest; these logs never carry payloads (tested), so a customer key adds cost and key policy without protecting more.',
    );
    return group;
  }

  /** A function role with explicit statements only: its own log group, then `statements`. */
  private functionRole(id: string, logGroup: logs.LogGroup, statements: iam.PolicyStatement[]): iam.Role {
    const role = new iam.Role(this, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    role.addToPolicy(
      new iam.PolicyStatement({
        sid: 'OwnLogs',
        actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [logGroup.logGroupArn, `${logGroup.logGroupArn}:*`],
      }),
    );
    statements.forEach((statement) => role.addToPolicy(statement));
    const logGroupId = this.getLogicalId(logGroup.node.defaultChild as CfnElement);
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logGroupId}.Arn>:*]`,
      reason: "Lambda names its log streams itself; the wildcard covers only streams of the function's own log group.",
    });
    return role;
  }
}
