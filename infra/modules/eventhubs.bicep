// Event Hubs: local (SAS) authentication disabled; hubs for raw telemetry, windows, alerts,
// incidents and dead letters; consumer groups for the function and Stream Analytics; the function's roles.
param location string
param tags object
param namespaceName string
param hubs object
param partitionCount int
param retentionDays int
param functionPrincipalId string
param roleAssignments array
param diagnosticSettings array
@description('A private endpoint, and public network access off except for trusted Azure services (Stream Analytics).')
param privateNetworking bool = false
param privateEndpointSubnetId string = ''
param dnsZoneIds object = {}

var receiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde' // Azure Event Hubs Data Receiver
var sender = '2b629674-e913-4c01-ae53-ef4638d8f975' // Azure Event Hubs Data Sender
var builtInRoles = {
  'Azure Event Hubs Data Receiver': receiver
  'Azure Event Hubs Data Sender': sender
  'Azure Event Hubs Data Owner': 'f526a384-b230-433a-b45c-95f59c4a2dec'
}

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: namespaceName
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: 1
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    isAutoInflateEnabled: false
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
  }
}

// With privateNetworking: only the private endpoint, plus trusted Microsoft services. Stream
// Analytics (without a dedicated cluster) cannot use private endpoints; it is a trusted service
// for Event Hubs when it authenticates with its managed identity, as streamanalytics.bicep does.
resource networkRules 'Microsoft.EventHub/namespaces/networkRuleSets@2024-01-01' = if (privateNetworking) {
  parent: namespace
  name: 'default'
  properties: {
    publicNetworkAccess: 'Disabled'
    defaultAction: 'Deny'
    trustedServiceAccessEnabled: true
    ipRules: []
    virtualNetworkRules: []
  }
}

module endpoint 'privateendpoint.bicep' = if (privateNetworking) {
  name: 'pe-${namespaceName}'
  params: {
    location: location
    tags: tags
    name: 'pe-${namespaceName}'
    subnetId: privateEndpointSubnetId
    targetId: namespace.id
    groupId: 'namespace'
    dnsZoneId: dnsZoneIds.?eventHubs ?? ''
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = [
  for name in items(hubs): {
    parent: namespace
    name: name.value
    properties: {
      partitionCount: partitionCount
      messageRetentionInDays: retentionDays
    }
  }
]

resource telemetryHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.telemetry
}

resource windowsHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.windows
}

resource alertsHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.alerts
}

resource incidentsHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.incidents
}

resource deadLetterHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.deadLetter
}

resource functionGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: windowsHub
  name: 'scorewindows'
  dependsOn: [
    hub
  ]
}

resource streamAnalyticsGroup 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = {
  parent: telemetryHub
  name: 'streamanalytics'
  dependsOn: [
    hub
  ]
}

// The function reads windows and writes alerts, incidents and dead letters: per hub, nothing wider.
resource functionReadsWindows 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(windowsHub.id, functionPrincipalId, receiver)
  scope: windowsHub
  dependsOn: [
    hub
  ]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', receiver)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionSendsAlerts 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(alertsHub.id, functionPrincipalId, sender)
  scope: alertsHub
  dependsOn: [
    hub
  ]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionSendsIncidents 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(incidentsHub.id, functionPrincipalId, sender)
  scope: incidentsHub
  dependsOn: [
    hub
  ]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource functionSendsDeadLetters 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(deadLetterHub.id, functionPrincipalId, sender)
  scope: deadLetterHub
  dependsOn: [
    hub
  ]
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sender)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource extraAssignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for assignment in roleAssignments: {
    name: guid(namespace.id, assignment.principalId, assignment.roleDefinitionIdOrName)
    scope: namespace
    properties: {
      roleDefinitionId: contains(builtInRoles, assignment.roleDefinitionIdOrName) ? subscriptionResourceId('Microsoft.Authorization/roleDefinitions', builtInRoles[assignment.roleDefinitionIdOrName]) : assignment.roleDefinitionIdOrName
      principalId: assignment.principalId
      principalType: assignment.?principalType ?? 'ServicePrincipal'
    }
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for setting in diagnosticSettings: {
    name: setting.?name ?? 'diagnostics'
    scope: namespace
    properties: {
      workspaceId: setting.workspaceResourceId
      logs: [
        {
          categoryGroup: 'allLogs'
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

output namespaceName string = namespace.name
output fullyQualifiedNamespace string = '${namespace.name}.servicebus.windows.net'
output functionConsumerGroup string = functionGroup.name
output streamAnalyticsConsumerGroup string = streamAnalyticsGroup.name
