using 'main.bicep'

// Change these two; everything else has a working default.
param namePrefix = 'sensoranom'
param alertEmail = 'oncall@example.com'

param tags = {
  workload: 'sensor-anomaly'
}
param instanceMemoryMB = 2048
param maximumInstanceCount = 40
param eventHubPartitionCount = 4
param eventHubRetentionDays = 1
param streamingUnits = 1
param sqlReaderGroupName = ''
param driftHours = 24
// Who may promote models (README, Updating the model): your object id, a group's or a pipeline's.
param modelOperatorPrincipalId = ''
param modelOperatorPrincipalType = 'User'
param modelPollSecs = 30
// Private endpoints for SQL, storage and Event Hubs, the app on a VNet: see docs/infra-scan.md.
param privateNetworking = false
