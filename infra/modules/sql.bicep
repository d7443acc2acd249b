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
@description('E-mail address Microsoft Defender for SQL sends threat alerts to.')
param alertEmail string
@description('A private endpoint and no public network access; the setup script then runs inside the network.')
param privateNetworking bool = false
param privateEndpointSubnetId string = ''
param deploymentScriptSubnetId string = ''
param dnsZoneIds object = {}
@description('The setup script\'s own storage account, created only with privateNetworking.')
@minLength(3)
@maxLength(24)
param scriptStorageName string

resource server 'Microsoft.Sql/servers@2023-08-01-preview' = {
  // checkov:skip=CKV_AZURE_113: Disabled when privateNetworking is true (private endpoint below). Off by default, the function app (no VNet) and the setup script reach the server over its public endpoint, which admits Azure-internal addresses only (AllowAllWindowsAzureIps) and Entra logins only
  // checkov:skip=CKV_AZURE_24: audit records go to the Log Analytics workspace (isAzureMonitorTargetEnabled), whose retentionInDays governs how long they are kept; retentionDays applies only to a storage-account audit target, which this deployment does not have
  name: serverName
  location: location
  tags: tags
  properties: {
    minimalTlsVersion: '1.2'
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
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

// Auditing to the workspace: server-level, so it covers every database. Authentication and
// permission, principal, role and schema changes are recorded; BATCH_COMPLETED_GROUP (every
// statement, so every insert the function makes) is left out to keep Log Analytics ingestion small.
resource auditing 'Microsoft.Sql/servers/auditingSettings@2023-08-01-preview' = {
  parent: server
  name: 'default'
  dependsOn: [
    auditDiagnostics
  ]
  properties: {
    state: 'Enabled'
    isAzureMonitorTargetEnabled: true
    auditActionsAndGroups: [
      'SUCCESSFUL_DATABASE_AUTHENTICATION_GROUP'
      'FAILED_DATABASE_AUTHENTICATION_GROUP'
      'DATABASE_PERMISSION_CHANGE_GROUP'
      'DATABASE_PRINCIPAL_CHANGE_GROUP'
      'DATABASE_ROLE_MEMBER_CHANGE_GROUP'
      'SCHEMA_OBJECT_CHANGE_GROUP'
    ]
  }
}

// Server-level audit records reach Log Analytics through a diagnostic setting on master.
resource master 'Microsoft.Sql/servers/databases@2023-08-01-preview' existing = {
  // checkov:skip=CKV_AZURE_23: not created here: the server's own master database, referenced only to attach the audit diagnostic setting; the server-level auditing above covers it
  // checkov:skip=CKV_AZURE_25: not created here: the server's own master database; the server-level threat detection below covers it
  parent: server
  name: 'master'
}

resource auditDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = [
  for setting in diagnosticSettings: {
    name: setting.?name ?? 'diagnostics'
    scope: master
    properties: {
      workspaceId: setting.workspaceResourceId
      logs: [
        {
          category: 'SQLSecurityAuditEvents'
          enabled: true
        }
      ]
    }
  }
]

// Microsoft Defender for SQL's threat detection for every database on the server, every alert
// type, mailed to the alert address and the subscription's admins.
resource threatDetection 'Microsoft.Sql/servers/securityAlertPolicies@2023-08-01-preview' = {
  parent: server
  name: 'Default'
  properties: {
    state: 'Enabled'
    emailAccountAdmins: true
    emailAddresses: [
      alertEmail
    ]
  }
}

// Lets Azure services (the function app, the deployment script) reach the server; they still
// need an Entra identity with a user in the database. Not with privateNetworking: no public access.
resource azureServices 'Microsoft.Sql/servers/firewallRules@2023-08-01-preview' = if (!privateNetworking) {
  parent: server
  name: 'AllowAllWindowsAzureIps'
  properties: {
    startIpAddress: '0.0.0.0'
    endIpAddress: '0.0.0.0'
  }
}

resource database 'Microsoft.Sql/servers/databases@2023-08-01-preview' = {
  // checkov:skip=CKV_AZURE_229: zone redundancy is for availability, not durability (backups are kept regardless); it costs extra on serverless General Purpose and is not offered in every region. During an outage Event Hubs keeps the windows for the retention period and the function retries its inserts
  // checkov:skip=CKV_AZURE_26: alerts go to alertEmail through the server-level policy (threatDetection above), which covers every database; checkov looks only for an ARM-style policy nested in the database, which Bicep cannot express
  // checkov:skip=CKV_AZURE_27: the subscription's admins are mailed through the server-level policy (threatDetection above, emailAccountAdmins: true), which covers every database; checkov looks only for an ARM-style policy nested in the database
  // checkov:skip=CKV_AZURE_23: auditing is server-level (auditing above) and covers every database; a database-level policy with the same target would write every record twice
  // checkov:skip=CKV_AZURE_25: threat detection is server-level (threatDetection above) and covers every database; a database-level policy would only repeat it
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

// privateNetworking: the server's private endpoint, and the storage account the setup script
// needs to run inside the network (scriptstorage.bicep).
module sqlEndpoint 'privateendpoint.bicep' = if (privateNetworking) {
  name: 'pe-${serverName}'
  params: {
    location: location
    tags: tags
    name: 'pe-${serverName}'
    subnetId: privateEndpointSubnetId
    targetId: server.id
    groupId: 'sqlServer'
    dnsZoneId: dnsZoneIds.?sql ?? ''
  }
}

module scriptStorage 'scriptstorage.bicep' = if (privateNetworking) {
  name: 'script-storage'
  params: {
    location: location
    tags: tags
    storageName: scriptStorageName
    deployIdentityPrincipalId: deployIdentityPrincipalId
    privateEndpointSubnetId: privateEndpointSubnetId
    dnsZoneId: dnsZoneIds.?file ?? ''
  }
}

// With privateNetworking the setup container runs in the deployment-script subnet, on the
// storage account above, and reaches the server through its private endpoint.
var scriptInNetwork = {
  storageAccountSettings: {
    storageAccountName: scriptStorageName
  }
  containerSettings: {
    subnetIds: [
      {
        id: deploymentScriptSubnetId
      }
    ]
  }
}

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
    sqlEndpoint
    scriptStorage
  ]
  properties: union({
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
      {
        name: 'MIGRATION_003_NAME'
        value: 'V003__incidents.sql'
      }
      {
        name: 'MIGRATION_003_SQL'
        value: loadTextContent('../../sql/V003__incidents.sql')
      }
      {
        name: 'MIGRATION_004_NAME'
        value: 'V004__idempotent_across_models.sql'
      }
      {
        name: 'MIGRATION_004_SQL'
        value: loadTextContent('../../sql/V004__idempotent_across_models.sql')
      }
    ]
    scriptContent: loadTextContent('../scripts/sql-setup.sh')
  }, privateNetworking ? scriptInNetwork : {})
}

output serverFqdn string = server.properties.fullyQualifiedDomainName
