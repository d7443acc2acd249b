// Azure SQL with Entra-only authentication and a serverless database. The deployment identity
// is the server's Entra admin; a deployment script run as it applies the sql/ migrations and
// creates the function identity's contained user with SELECT and INSERT on dbo.anomalies only.
param location string
param tags object
param serverName string
param databaseName string
param deployIdentityId string
param deployIdentityName string
param deployIdentityPrincipalId string
param deployIdentityClientId string
param functionIdentityName string
param readerGroupName string
param diagnosticSettings array

resource server 'Microsoft.Sql/servers@2023-08-01-preview' = {
  name: serverName
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    administrators: {
      administratorType: 'ActiveDirectory'
      azureADOnlyAuthentication: true
      login: deployIdentityName
      sid: deployIdentityPrincipalId
      tenantId: tenant().tenantId
      principalType: 'Application'
    }
  }
}

// Lets Azure services (the function app, the deployment script) reach the server; they still
// need an Entra identity with a user in the database.
resource azureServices 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = {
  parent: server
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource database 'Microsoft.Sql/servers/databases@2023-08-01-preview' = {
  parent: server
  name: databaseName
  location: location
  tags: tags
  sku: {
    name: 'GP_S_Gen5'
    tier: 'GeneralPurpose'
    family: 'Gen5'
    capacity: 1
  }
  properties: {
    autoPauseDelay: 60
    minCapacity: json('0.5')
    maxSizeBytes: 34359738368
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for setting in diagnosticSettings: {
    name: setting.?name ?? 'diagnostics'
    scope: database
    properties: {
      workspaceId: setting.workspaceResourceId
      metrics: [
        {
          category: 'Basic'
          enabled: true
        }
      ]
    }
  }
]

resource setup 'Microsoft.Resources/deploymentScripts@2023-08-01' = {
  name: 'sql-setup-${serverName}'
  location: location
  tags: tags
  kind: 'AzureCLI'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${deployIdentityId}': {}
    }
  }
  dependsOn: [
    database
    azureServices
  ]
  properties: {
    azCliVersion: '2.67.0'
    retentionInterval: 'PT1H'
    timeout: 'PT30M'
    cleanupPreference: 'OnSuccess'
    environmentVariables: [
      {
        name: 'SQL_SERVER'
        value: server.properties.fullyQualifiedDomainName
      }
      {
        name: 'SQL_DATABASE'
        value: databaseName
      }
      {
        name: 'DEPLOY_CLIENT_ID'
        value: deployIdentityClientId
      }
      {
        name: 'FUNCTION_IDENTITY'
        value: functionIdentityName
      }
      {
        name: 'READER_GROUP'
        value: readerGroupName
      }
      // The same scripts `sensor-anomaly db migrate` applies, in order.
      {
        name: 'MIGRATION_001_NAME'
        value: 'V001__anomalies.sql'
      }
      {
        name: 'MIGRATION_001_SQL'
        value: loadTextContent('../../sql/V001__anomalies.sql')
      }
      {
        name: 'MIGRATION_002_NAME'
        value: 'V002__binary_key_collation.sql'
      }
      {
        name: 'MIGRATION_002_SQL'
        value: loadTextContent('../../sql/V002__binary_key_collation.sql')
      }
    ]
    scriptContent: loadTextContent('../scripts/sql-setup.sh')
  }
}

output serverFqdn string = server.properties.fullyQualifiedDomainName
