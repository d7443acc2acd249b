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
@description('The model store: the storage account\'s blob endpoint, its container and the poll interval (README, Updating the model).')
param modelStoreUri string
param modelContainer string
param modelPollSecs int
param diagnosticSettings array
@description('The app subnet (delegated to Microsoft.App/environments) for outbound VNet integration; empty for none.')
param virtualNetworkSubnetId string = ''

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: a zone-redundant Flex Consumption plan needs zone-redundant (ZRS) host storage, which this deployment keeps LRS (storage.bicep), and is offered in fewer regions; the app is an Event Hubs consumer, so during a zone outage events wait in the hub and the trigger resumes from its checkpoints
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

// The app's own identity and the extra ones, as userAssignedIdentities wants them: an object
// keyed by resource id ({"<id>": {}, ...}). Built as JSON text rather than with toObject() and a
// lambda, which checkov's Bicep parser cannot read (resource ids hold no quote or backslash).
var identities = json('{"${join(union([identityId], extraIdentityIds), '":{},"')}":{}}')

resource app 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: the HTTP API (dashboard, scoring, /api/health) is called from outside, with function keys except the anonymous health check, and deploy.sh zip-deploys through the app's public endpoint; privateNetworking makes the app's outbound traffic private, not its inbound
  // checkov:skip=CKV_AZURE_17: the callers (browsers on the dashboard, scripts, deploy.sh's health poll) hold no client certificates; HTTP routes are authorized by function keys, the event path uses no HTTP at all
  // checkov:skip=CKV_AZURE_18: http20Enabled is a front-end protocol option, not an access control; the routes serve a dashboard and a few scripted calls, where HTTP/2 gains nothing, and the scored traffic arrives through Event Hubs, not HTTP
  // checkov:skip=CKV_AZURE_67: same setting as CKV_AZURE_18 (http20Enabled), same reason
  // checkov:skip=CKV_AZURE_78: Flex Consumption has a single deployment path, the blob container in functionAppConfig.deployment, read with the app's identity; this deployment uses no FTP or publishing credentials
  // checkov:skip=CKV_AZURE_212: numberOfWorkers sizes a dedicated plan; Flex Consumption scales instances itself, per function, up to maximumInstanceCount
  // checkov:skip=CKV_AZURE_213: App Service health-check eviction serves plans with a fixed instance pool; Flex starts and stops instances itself. deploy.sh polls the anonymous /api/health after each deployment and the failed-invocations alert watches the running app
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
    virtualNetworkSubnetId: empty(virtualNetworkSubnetId) ? null : virtualNetworkSubnetId
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
          name: 'IncidentsHubName'
          value: hubs.incidents
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
        // The model store every instance follows, by the app's identity; the packaged model
        // serves until a model is promoted there.
        {
          name: 'ANOMALY_MODEL_STORE__blobServiceUri'
          value: modelStoreUri
        }
        {
          name: 'ANOMALY_MODEL_STORE__clientId'
          value: identityClientId
        }
        {
          name: 'ANOMALY_MODEL_CONTAINER'
          value: modelContainer
        }
        {
          name: 'ANOMALY_MODEL_POLL_SECS'
          value: string(modelPollSecs)
        }
        {
          name: 'ANOMALY_RETRAIN_AFTER_HOURS'
          value: '6'
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
        // Incidents (README, Incidents): the defaults, written out so they can be changed here.
        {
          name: 'ANOMALY_INCIDENT_OPEN_AFTER'
          value: '2'
        }
        {
          name: 'ANOMALY_INCIDENT_OPEN_OF'
          value: '3'
        }
        {
          name: 'ANOMALY_INCIDENT_OPEN_SEVERITY'
          value: 'high'
        }
        {
          name: 'ANOMALY_INCIDENT_RESOLVE_AFTER'
          value: '5'
        }
        {
          name: 'ANOMALY_INCIDENT_GAP_SECS'
          value: '1800'
        }
        {
          name: 'ANOMALY_PUBLISH_WINDOW_ALERTS'
          value: 'true'
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
