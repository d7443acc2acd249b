// privateNetworking only: the storage account the SQL setup deployment script runs on when its
// container is inside the network (Microsoft.Resources/deploymentScripts 2023-08-01,
// storageAccountSettings + containerSettings.subnetIds). The deployment-script service keeps
// the script and its logs on an Azure Files share that the container mounts with the account
// key, so this account, unlike the function's, allows shared keys. It serves nothing else, has
// no public network access, and is reachable only through its file private endpoint; the
// deployment identity gets Storage File Data Privileged Contributor on it, as the service asks.
param location string
param tags object
@minLength(3)
@maxLength(24)
param storageName string
param deployIdentityPrincipalId string
param privateEndpointSubnetId string
param dnsZoneId string

var fileDataPrivilegedContributor = '69566ab7-960f-475b-8e7c-b3118f30c6bd' // Storage File Data Privileged Contributor

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206: holds only the setup script's share (the script and its logs, removed after a successful run); nothing in it needs a second region
  // checkov:skip=CKV_AZURE_43: checkov cannot evaluate the storageName parameter; main.bicep builds it as 'stscript' and uniqueString(): 21 lowercase letters and digits, as the parameter's @minLength and @maxLength also enforce
  name: storageName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Disabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Deny'
    }
  }
}

module fileEndpoint 'privateendpoint.bicep' = {
  name: 'pe-${storageName}-file'
  params: {
    location: location
    tags: tags
    name: 'pe-${storageName}-file'
    subnetId: privateEndpointSubnetId
    targetId: account.id
    groupId: 'file'
    dnsZoneId: dnsZoneId
  }
}

resource deployIdentityFiles 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, deployIdentityPrincipalId, fileDataPrivilegedContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', fileDataPrivilegedContributor)
    principalId: deployIdentityPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
