// The function app on Flex Consumption (FC1) with the custom-handler runtime, its identity, the
// deployment container, and every app setting the handler reads. None of the settings Flex
// Consumption deprecates (FUNCTIONS_WORKER_RUNTIME, FUNCTIONS_EXTENSION_VERSION,
// WEBSITE_RUN_FROM_PACKAGE) are set: the runtime is in functionAppConfig.
param location string
param tags object
param planName string
param appName string
param identityId string
param identityClientId string
param extraIdentityIds array
param storageName string
param deploymentContainerUrl string
param instanceMemoryMB int
param maximumInstanceCount int
param appInsightsConnectionString string
param eventHubsNamespaceFqdn string
param hubs object
param functionConsumerGroup string
param sqlConnectionString string
param driftHours int
param diagnosticSettings array

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

var identities = union(
  {
    '${identityId}': {}
  },
  toObject(extraIdentityIds, id => id, id => {})
)

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: identities
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: deploymentContainerUrl
          authentication: {
            type: 'UserAssignedIdentity'
            userAssignedIdentityResourceId: identityId
          }
        }
      }
      scaleAndConcurrency: {
        instanceMemoryMB: instanceMemoryMB
        maximumInstanceCount: maximumInstanceCount
      }
      runtime: {
        name: 'custom'
        version: '1.0'
      }
    }
    siteConfig: {
      minTlsVersion: '1.2'
      appSettings: [
        // The host's storage and the Event Hubs connection, by identity.
        {
          name: 'AzureWebJobsStorage__accountName'
          value: storageName
        }
        {
          name: 'AzureWebJobsStorage__credential'
          value: 'managedidentity'
        }
        {
          name: 'AzureWebJobsStorage__clientId'
          value: identityClientId
        }
        {
          name: 'EventHubConnection__fullyQualifiedNamespace'
          value: eventHubsNamespaceFqdn
        }
        {
          name: 'EventHubConnection__credential'
          value: 'managedidentity'
        }
        {
          name: 'EventHubConnection__clientId'
          value: identityClientId
        }
        // The hub names function.json refers to (%WindowsHubName% and so on).
        {
          name: 'WindowsHubName'
          value: hubs.windows
        }
        {
          name: 'WindowsConsumerGroup'
          value: functionConsumerGroup
        }
        {
          name: 'AlertsHubName'
          value: hubs.alerts
        }
        {
          name: 'DeadLetterHubName'
          value: hubs.deadLetter
        }
        {
          name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
          value: appInsightsConnectionString
        }
        // The handler's own settings (README, Configuration).
        {
          name: 'ANOMALY_MODEL_PATH'
          value: 'models/default.onnx'
        }
        {
          name: 'ANOMALY_SQL_CONNECTION_STRING'
          value: sqlConnectionString
        }
        {
          name: 'ANOMALY_SQL_POOL_SIZE'
          value: '4'
        }
        {
          name: 'ANOMALY_SQL_RETRY_BUDGET_MS'
          value: '20000'
        }
        {
          name: 'ANOMALY_SQLITE_PATH'
          value: '/tmp/anomalies.sqlite'
        }
        {
          name: 'ANOMALY_STORE_TIMEOUT_MS'
          value: '5000'
        }
        {
          name: 'ANOMALY_MAX_BATCH'
          value: '1000'
        }
        {
          name: 'ANOMALY_MAX_BODY_BYTES'
          value: '1048576'
        }
        {
          name: 'ANOMALY_MAX_INVOCATION_BYTES'
          value: '67108864'
        }
        {
          name: 'ANOMALY_TRIGGER_BINDING'
          value: 'events'
        }
        {
          name: 'ANOMALY_DRIFT_HOURS'
          value: string(driftHours)
        }
        {
          name: 'ANOMALY_MAX_FUTURE_SKEW_SECS'
          value: '600'
        }
        {
          name: 'ANOMALY_MODELS_DIR'
          value: 'models'
        }
        // Anomalies go to Azure SQL here; the SQLite path above is never written.
        {
          name: 'ANOMALY_ALLOW_EPHEMERAL_SQLITE'
          value: 'false'
        }
        {
          name: 'RUST_LOG'
          value: 'info'
        }
      ]
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for setting in diagnosticSettings: {
    name: setting.?name ?? 'diagnostics'
    scope: app
    properties: {
      workspaceId: setting.workspaceResourceId
      logs: [
        {
          category: 'FunctionAppLogs'
          enabled: true
        }
      ]
      metrics: [
        {
          category: 'AllMetrics'
          enabled: true
        }
      ]
    }
  }
]

output name string = app.name
output url string = 'https://${app.properties.defaultHostName}'
