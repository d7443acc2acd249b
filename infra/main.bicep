// The whole system in one resource group: device telemetry into Event Hubs, Stream Analytics
// windows, the function (Flex Consumption, custom handler) scoring them, anomalies in Azure SQL,
// alerts and dead letters in their hubs, telemetry in Application Insights.
// Identity only: no keys, no SAS, no SQL passwords. Deploy with scripts/deploy.sh.
targetScope = 'resourceGroup'

@description('Prefix of every resource name: 3 to 11 lowercase letters and digits.')
@minLength(3)
@maxLength(11)
param namePrefix string

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Tags put on every resource.')
param tags object = {}

@description('Extra managed identities of the function app (AVM shape); the app always has its own user-assigned identity.')
param managedIdentities object = {
  userAssignedResourceIds: []
}

@description('Extra role assignments on the Event Hubs namespace (AVM shape), e.g. your device gateway as "Azure Event Hubs Data Sender".')
param roleAssignments array = []

@description('Diagnostic settings (AVM shape) for the Event Hubs namespace, the function app and the database; empty sends them to the workspace created here.')
param diagnosticSettings array = []

@description('Function app instance memory in MB.')
@allowed([
  512
  2048
  4096
])
param instanceMemoryMB int = 2048

@description('Most instances the function app scales out to.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('Partitions of each hub (fixed after creation on the Standard tier).')
@minValue(1)
@maxValue(32)
param eventHubPartitionCount int = 4

@description('Days each hub keeps events.')
@minValue(1)
@maxValue(7)
param eventHubRetentionDays int = 1

@description('Stream Analytics streaming units (V2: 1, 3, 6, 12, ...).')
param streamingUnits int = 1

@description('Entra group whose members read the anomalies table (dashboards, reports); empty for none.')
param sqlReaderGroupName string = ''

@description('E-mail address the alert rules notify.')
param alertEmail string

@description('Hours of data the drift check covers (ANOMALY_DRIFT_HOURS).')
param driftHours int = 24

@description('Principal (object) id allowed to promote models in the model store (Storage Blob Data Contributor on its container): you (az ad signed-in-user show --query id -o tsv), a group or a pipeline identity; empty for none.')
param modelOperatorPrincipalId string = ''

@description('The kind of modelOperatorPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param modelOperatorPrincipalType string = 'User'

@description('Seconds between two checks of the model store\'s pointer (ANOMALY_MODEL_POLL_SECS): a promotion reaches every instance within this, plus a download.')
@minValue(1)
@maxValue(3600)
param modelPollSecs int = 30

@description('Puts SQL, storage and Event Hubs behind private endpoints (public network access off) and the function app on a virtual network. Off by default: it adds a billed private endpoint per service (six), six private DNS zones and a storage account for the SQL setup script. Stream Analytics still reaches Event Hubs as a trusted service; device senders must reach the namespace through the network. See docs/infra-scan.md.')
param privateNetworking bool = false

@description('With privateNetworking: the virtual network\'s address space and its subnets (app: the function app outbound integration; privateEndpoints; deploymentScript: the SQL setup container).')
param privateNetworkAddresses object = {
  vnet: '10.42.0.0/22'
  app: '10.42.0.0/24'
  privateEndpoints: '10.42.1.0/24'
  deploymentScript: '10.42.2.0/27'
}

var names = {
  identity: 'id-${namePrefix}-func'
  deployIdentity: 'id-${namePrefix}-deploy'
  // Storage account names hold 24 characters at most: 'st', an 11-character prefix and the
  // 13-character uniqueString() would make 26.
  storage: take(toLower('st${namePrefix}${uniqueString(resourceGroup().id)}'), 24)
  scriptStorage: 'stscript${uniqueString(resourceGroup().id)}'
  vnet: 'vnet-${namePrefix}'
  plan: 'plan-${namePrefix}'
  functionApp: 'func-${namePrefix}-${uniqueString(resourceGroup().id)}'
  eventHubs: 'evhns-${namePrefix}-${uniqueString(resourceGroup().id)}'
  streamAnalytics: 'asa-${namePrefix}'
  sqlServer: 'sql-${namePrefix}-${uniqueString(resourceGroup().id)}'
  sqlDatabase: 'anomalies'
  workspace: 'log-${namePrefix}'
  appInsights: 'appi-${namePrefix}'
}
var hubs = {
  telemetry: 'telemetry'
  windows: 'windows'
  alerts: 'alerts'
  incidents: 'incidents'
  deadLetter: 'windows-deadletter'
}

resource functionIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.identity
  location: location
  tags: tags
}

resource deployIdentity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: names.deployIdentity
  location: location
  tags: tags
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    tags: tags
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    alertEmail: alertEmail
  }
}

var diagnostics = empty(diagnosticSettings) ? [
  {
    name: 'to-workspace'
    workspaceResourceId: monitoring.outputs.workspaceId
  }
] : diagnosticSettings

module network 'modules/network.bicep' = if (privateNetworking) {
  name: 'network'
  params: {
    location: location
    tags: tags
    vnetName: names.vnet
    addresses: privateNetworkAddresses
  }
}

// Read only when privateNetworking is true (the module exists only then).
var privateEndpointSubnetId = privateNetworking ? network.outputs.privateEndpointSubnetId : ''
var dnsZoneIds = privateNetworking ? network.outputs.dnsZoneIds : {}

module eventHubs 'modules/eventhubs.bicep' = {
  name: 'eventhubs'
  params: {
    location: location
    tags: tags
    namespaceName: names.eventHubs
    hubs: hubs
    partitionCount: eventHubPartitionCount
    retentionDays: eventHubRetentionDays
    functionPrincipalId: functionIdentity.properties.principalId
    roleAssignments: roleAssignments
    diagnosticSettings: diagnostics
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateEndpointSubnetId
    dnsZoneIds: dnsZoneIds
  }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    tags: tags
    storageName: names.storage
    functionPrincipalId: functionIdentity.properties.principalId
    modelOperatorPrincipalId: modelOperatorPrincipalId
    modelOperatorPrincipalType: modelOperatorPrincipalType
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateEndpointSubnetId
    dnsZoneIds: dnsZoneIds
  }
}

module sql 'modules/sql.bicep' = {
  name: 'sql'
  params: {
    location: location
    tags: tags
    serverName: names.sqlServer
    databaseName: names.sqlDatabase
    deployIdentityId: deployIdentity.id
    deployIdentityName: deployIdentity.name
    deployIdentityPrincipalId: deployIdentity.properties.principalId
    deployIdentityClientId: deployIdentity.properties.clientId
    functionIdentityName: functionIdentity.name
    readerGroupName: sqlReaderGroupName
    diagnosticSettings: diagnostics
    alertEmail: alertEmail
    privateNetworking: privateNetworking
    privateEndpointSubnetId: privateEndpointSubnetId
    deploymentScriptSubnetId: privateNetworking ? network.outputs.deploymentScriptSubnetId : ''
    dnsZoneIds: dnsZoneIds
    scriptStorageName: names.scriptStorage
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'functionapp'
  params: {
    location: location
    tags: tags
    planName: names.plan
    appName: names.functionApp
    identityId: functionIdentity.id
    identityClientId: functionIdentity.properties.clientId
    extraIdentityIds: managedIdentities.?userAssignedResourceIds ?? []
    storageName: storage.outputs.name
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    eventHubsNamespaceFqdn: eventHubs.outputs.fullyQualifiedNamespace
    hubs: hubs
    functionConsumerGroup: eventHubs.outputs.functionConsumerGroup
    sqlConnectionString: 'Server=tcp:${sql.outputs.serverFqdn},1433;Database=${names.sqlDatabase};Authentication=Active Directory Managed Identity;User Id=${functionIdentity.properties.clientId}'
    driftHours: driftHours
    modelStoreUri: storage.outputs.blobEndpoint
    modelContainer: storage.outputs.modelContainer
    modelPollSecs: modelPollSecs
    diagnosticSettings: diagnostics
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : ''
  }
}

module streamAnalytics 'modules/streamanalytics.bicep' = {
  name: 'streamanalytics'
  params: {
    location: location
    tags: tags
    jobName: names.streamAnalytics
    namespaceName: eventHubs.outputs.namespaceName
    hubs: hubs
    consumerGroup: eventHubs.outputs.streamAnalyticsConsumerGroup
    streamingUnits: streamingUnits
  }
}

output functionAppName string = functionApp.outputs.name
output functionAppUrl string = functionApp.outputs.url
output eventHubsNamespace string = eventHubs.outputs.fullyQualifiedNamespace
output telemetryHub string = hubs.telemetry
output windowsHub string = hubs.windows
output alertsHub string = hubs.alerts
output incidentsHub string = hubs.incidents
output deadLetterHub string = hubs.deadLetter
output streamAnalyticsJob string = streamAnalytics.outputs.name
output sqlServerFqdn string = sql.outputs.serverFqdn
output sqlDatabase string = names.sqlDatabase
output appInsightsName string = names.appInsights
output modelStoreUri string = storage.outputs.blobEndpoint
output modelContainer string = storage.outputs.modelContainer
