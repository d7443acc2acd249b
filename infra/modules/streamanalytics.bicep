// The Stream Analytics job: telemetry hub in, windows hub out, both by the job's managed
// identity; the query is the committed infra/stream-analytics/windows.asaql (one definition).
// The job is created stopped; scripts/deploy.sh starts it once the roles are in place.
param location string
param tags object
param jobName string
param namespaceName string
param hubs object
param consumerGroup string
param streamingUnits int

var receiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde' // Azure Event Hubs Data Receiver
var sender = '2b629674-e913-4c01-ae53-ef4638d8f975' // Azure Event Hubs Data Sender

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: namespaceName
}

resource telemetryHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.telemetry
}

resource windowsHub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' existing = {
  parent: namespace
  name: hubs.windows
}

resource job 'Microsoft.StreamAnalytics/streamingjobs@2021-10-01-preview' = {
  name: jobName
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    sku: {
      name: 'StandardV2'
    }
    compatibilityLevel: '1.2'
    eventsOutOfOrderPolicy: 'Adjust'
    eventsOutOfOrderMaxDelayInSeconds: 5
    eventsLateArrivalMaxDelayInSeconds: 10
    outputErrorPolicy: 'Retry'
    inputs: [
      {
        name: 'telemetry'
        properties: {
          type: 'Stream'
          datasource: {
            type: 'Microsoft.EventHub/EventHub'
            properties: {
              serviceBusNamespace: namespace.name
              eventHubName: hubs.telemetry
              consumerGroupName: consumerGroup
              authenticationMode: 'Msi'
            }
          }
          serialization: {
            type: 'Json'
            properties: {
              encoding: 'UTF8'
            }
          }
        }
      }
    ]
    outputs: [
      {
        name: 'windows'
        properties: {
          datasource: {
            type: 'Microsoft.EventHub/EventHub'
            properties: {
              serviceBusNamespace: namespace.name
              eventHubName: hubs.windows
              partitionKey: 'device_id'
              authenticationMode: 'Msi'
            }
          }
          serialization: {
            type: 'Json'
            properties: {
              encoding: 'UTF8'
              format: 'LineSeparated'
            }
          }
        }
      }
    ]
    transformation: {
      name: 'windows'
      properties: {
        streamingUnits: streamingUnits
        query: loadTextContent('../stream-analytics/windows.asaql')
      }
    }
  }
}

resource readsTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(telemetryHub.id, job.id, receiver)
  scope: telemetryHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', receiver)
    principalId: job.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource writesWindows 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(windowsHub.id, job.id, sender)
  scope: windowsHub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sender)
    principalId: job.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = job.name
