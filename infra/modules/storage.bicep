// The function app's storage: the host's state (AzureWebJobsStorage, identity-based), the
// Flex Consumption deployment container and the model store (the `models` container: model
// files and the pointer every instance follows). Shared keys disabled; the function's identity
// gets the blob, queue and table roles the host needs, the model operator the right to promote.
param location string
param tags object
@minLength(3)
@maxLength(24)
param storageName string
param functionPrincipalId string
@description('Private endpoints for blob, queue and table, and no public network access.')
param privateNetworking bool = false
param privateEndpointSubnetId string = ''
@description('Private DNS zone ids by sub-resource (network.bicep\'s dnsZoneIds).')
param dnsZoneIds object = {}
@description('The model store\'s container (ANOMALY_MODEL_CONTAINER).')
param modelContainer string = 'models'
@description('Principal (object) id of whoever promotes models (`sensor-anomaly model promote`): a person, a group or a pipeline\'s identity; empty for none.')
param modelOperatorPrincipalId string = ''
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param modelOperatorPrincipalType string = 'User'

var deploymentContainer = 'app-package'
var roles = {
  blobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  queueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  tableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
}

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_35: Deny when privateNetworking is true (blob, queue and table private endpoints below). Off by default, the Flex app has no VNet and reaches its host storage over the public endpoint; every request still needs an Entra token (allowSharedKeyAccess: false)
  // checkov:skip=CKV_AZURE_206: LRS on purpose: the account holds only the Functions host's state (leases, Event Hubs checkpoints, keys) and the deployment package, which deploy.sh uploads again; the host never fails over to a secondary region, so GRS would double the cost for nothing it uses
  // checkov:skip=CKV_AZURE_43: checkov cannot evaluate the storageName parameter; main.bicep builds it as take(toLower('st<namePrefix><uniqueString>'), 24): 3 to 24 lowercase letters and digits, as the parameter's @minLength and @maxLength also enforce
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: privateNetworking ? 'Deny' : 'Allow'
    }
  }
}

resource blobs 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource container 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: deploymentContainer
}

// Model files and the pointer. Versioned names are content-addressed, so nothing here is ever
// overwritten but the pointer (by conditional writes on its ETag).
resource models 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobs
  name: modelContainer
}

var blobDataReader = '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1'
var blobDataContributor = 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'

// The handler reads the model store. The host's account-wide Storage Blob Data Owner above
// already covers it; this assignment states what the model store needs, so it survives the
// host's role being narrowed or the models moving to another account.
resource modelReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(models.id, functionPrincipalId, blobDataReader)
  scope: models
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataReader)
    principalId: functionPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The operator uploads models and moves the pointer, in this container only.
resource modelOperator 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(modelOperatorPrincipalId)) {
  name: guid(models.id, modelOperatorPrincipalId, blobDataContributor)
  scope: models
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', blobDataContributor)
    principalId: modelOperatorPrincipalId
    principalType: modelOperatorPrincipalType
  }
}

resource assignments 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in items(roles): {
    name: guid(account.id, functionPrincipalId, role.value)
    scope: account
    properties: {
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role.value)
      principalId: functionPrincipalId
      principalType: 'ServicePrincipal'
    }
  }
]

// The host reaches blob (leases, checkpoints, the package), queue and table by identity.
module endpoints 'privateendpoint.bicep' = [
  for service in ['blob', 'queue', 'table']: if (privateNetworking) {
    name: 'pe-${storageName}-${service}'
    params: {
      location: location
      tags: tags
      name: 'pe-${storageName}-${service}'
      subnetId: privateEndpointSubnetId
      targetId: account.id
      groupId: service
      dnsZoneId: dnsZoneIds[?service] ?? ''
    }
  }
]

output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output modelContainer string = models.name
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer}'
