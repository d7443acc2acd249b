// Log Analytics, workspace-based Application Insights, the workbook, and the scheduled-query
// alert rules with their action group. The workbook and the queries are the committed files.
param location string
param tags object
param workspaceName string
param appInsightsName string
param alertEmail string

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
  }
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, appInsights.id, 'sensor-anomaly-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'sensor-anomaly'
    category: 'workbook'
    sourceId: appInsights.id
    serializedData: loadTextContent('../monitoring/workbook.json')
  }
}

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-${appInsightsName}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'sensoranom'
    enabled: true
    emailReceivers: [
      {
        name: 'on-call'
        emailAddress: alertEmail
        useCommonAlertSchema: true
      }
    ]
  }
}

var alerts = [
  {
    name: 'anomaly-rate'
    display: 'Anomaly rate above 10%'
    severity: 2
    window: 'PT15M'
    query: loadTextContent('../monitoring/alerts/anomaly-rate.kql')
  }
  {
    name: 'invocation-latency'
    display: 'ScoreWindows p99 above 500 ms'
    severity: 3
    window: 'PT15M'
    query: loadTextContent('../monitoring/alerts/invocation-latency.kql')
  }
  {
    name: 'drift'
    display: 'Feature drift: PSI above 0.2'
    severity: 3
    window: 'PT30M'
    query: loadTextContent('../monitoring/alerts/drift.kql')
  }
  {
    name: 'failed-invocations'
    display: 'More than 1% of ScoreWindows invocations failed'
    severity: 1
    window: 'PT15M'
    query: loadTextContent('../monitoring/alerts/failed-invocations.kql')
  }
  {
    name: 'retraining-recommended'
    display: 'Retraining recommended: drift lasted ANOMALY_RETRAIN_AFTER_HOURS'
    severity: 3
    window: 'PT30M'
    query: loadTextContent('../monitoring/alerts/retraining-recommended.kql')
  }
]

resource rules 'Microsoft.Insights/scheduledQueryRules@2023-03-15-preview' = [
  for alert in alerts: {
    name: '${appInsightsName}-${alert.name}'
    location: location
    tags: tags
    properties: {
      displayName: alert.display
      severity: alert.severity
      enabled: true
      evaluationFrequency: 'PT5M'
      windowSize: alert.window
      scopes: [
        appInsights.id
      ]
      criteria: {
        allOf: [
          {
            query: alert.query
            timeAggregation: 'Count'
            operator: 'GreaterThan'
            threshold: 0
            failingPeriods: {
              numberOfEvaluationPeriods: 1
              minFailingPeriodsToAlert: 1
            }
          }
        ]
      }
      actions: {
        actionGroups: [
          actionGroup.id
        ]
      }
    }
  }
]

output workspaceId string = workspace.id
output appInsightsId string = appInsights.id
// Not a credential: the instrumentation key only routes telemetry (Azure sets the same value
// as an app setting when you link Application Insights in the portal).
output appInsightsConnectionString string = appInsights.properties.ConnectionString
