// Private networking (main.bicep's privateNetworking = true): the virtual network and the
// private DNS zones the private endpoints register in. Three subnets:
// - app: the function app's outbound VNet integration, delegated to Microsoft.App/environments
//   (what Flex Consumption requires);
// - private-endpoints: the endpoints of SQL, storage (blob, queue, table), Event Hubs and the
//   SQL setup script's storage (file);
// - deployment-script: the container the SQL setup deployment script runs in, delegated to
//   Microsoft.ContainerInstance/containerGroups, so it reaches SQL over its private endpoint.
// The endpoints themselves are declared beside the resources they expose (storage.bicep,
// eventhubs.bicep, sql.bicep) through privateendpoint.bicep.
param location string
param tags object
param vnetName string
@description('Address space of the network and of its three subnets: vnet, app, privateEndpoints, deploymentScript.')
param addresses object

var zoneNames = {
  sql: 'privatelink${environment().suffixes.sqlServerHostname}'
  blob: 'privatelink.blob.${environment().suffixes.storage}'
  queue: 'privatelink.queue.${environment().suffixes.storage}'
  table: 'privatelink.table.${environment().suffixes.storage}'
  file: 'privatelink.file.${environment().suffixes.storage}'
  eventHubs: 'privatelink.servicebus.windows.net'
}
var zoneList = [
  zoneNames.sql
  zoneNames.blob
  zoneNames.queue
  zoneNames.table
  zoneNames.file
  zoneNames.eventHubs
]

resource vnet 'Microsoft.Network/virtualNetworks@2023-05-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addresses.vnet
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: addresses.app
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: addresses.privateEndpoints
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
      {
        name: 'deployment-script'
        properties: {
          addressPrefix: addresses.deploymentScript
          delegations: [
            {
              name: 'container-instances'
              properties: {
                serviceName: 'Microsoft.ContainerInstance/containerGroups'
              }
            }
          ]
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in zoneList: {
    name: zone
    location: 'global'
    tags: tags
  }
]

resource links 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in zoneList: {
    parent: zones[i]
    name: vnetName
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'app')
output privateEndpointSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'private-endpoints')
output deploymentScriptSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, 'deployment-script')
// Zone ids by the names above; the zones are linked to the network before these are read.
output dnsZoneIds object = {
  sql: resourceId('Microsoft.Network/privateDnsZones', zoneNames.sql)
  blob: resourceId('Microsoft.Network/privateDnsZones', zoneNames.blob)
  queue: resourceId('Microsoft.Network/privateDnsZones', zoneNames.queue)
  table: resourceId('Microsoft.Network/privateDnsZones', zoneNames.table)
  file: resourceId('Microsoft.Network/privateDnsZones', zoneNames.file)
  eventHubs: resourceId('Microsoft.Network/privateDnsZones', zoneNames.eventHubs)
}
