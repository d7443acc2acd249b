#!/usr/bin/env bash
# Run by the Bicep deployment script (Azure CLI container) as the SQL server's Entra admin:
# applies the sql/ migrations the way `sensor-anomaly db migrate` does (each once, recorded
# with the same checksum in dbo.schema_migrations), then gives the function's identity a
# contained user with SELECT and INSERT on dbo.anomalies, and the optional reader group
# db_datareader.
set -euo pipefail
version=1.8.0
curl -sSL "https://github.com/microsoft/go-sqlcmd/releases/download/v${version}/sqlcmd-linux-amd64.tar.bz2" | tar -xj -C /tmp sqlcmd
sql() {
  /tmp/sqlcmd -S "tcp:${SQL_SERVER},1433" -d "$SQL_DATABASE" --authentication-method ActiveDirectoryManagedIdentity \
    -U "$DEPLOY_CLIENT_ID" -b "$@"
}
sql -Q "IF OBJECT_ID(N'dbo.schema_migrations', N'U') IS NULL CREATE TABLE dbo.schema_migrations (version bigint NOT NULL CONSTRAINT pk_schema_migrations PRIMARY KEY, name nvarchar(200) NOT NULL, checksum nvarchar(16) NOT NULL, applied_at datetime2(3) NOT NULL CONSTRAINT df_schema_migrations_applied_at DEFAULT SYSUTCDATETIME());"
for var in $(env | grep -o '^MIGRATION_[0-9]*_SQL' | sort); do
  n=${var#MIGRATION_}; n=${n%_SQL}
  name_var="MIGRATION_${n}_NAME"
  printf '%s' "${!var}" > "/tmp/migration-$n.sql"
  # FNV-1a 64 of the script with \r\n as \n, as crates/sinks/src/azure_sql/migrate.rs computes it.
  sum=$(python3 -c 'import sys; h=0xcbf29ce484222325
for b in open(sys.argv[1],"rb").read().replace(b"\r\n",b"\n"): h=((h^b)*0x100000001b3)&0xffffffffffffffff
print(f"{h:016x}")' "/tmp/migration-$n.sql")
  applied=$(sql -h -1 -W -Q "SET NOCOUNT ON; SELECT checksum FROM dbo.schema_migrations WHERE version = $((10#$n));" | tr -d '[:space:]')
  if [ -n "$applied" ]; then
    [ "$applied" = "$sum" ] || { echo "migration ${!name_var} changed after it was applied" >&2; exit 1; }
    echo "${!name_var}: already applied"
    continue
  fi
  sql -i "/tmp/migration-$n.sql"
  sql -Q "INSERT INTO dbo.schema_migrations (version, name, checksum) VALUES ($((10#$n)), N'${!name_var}', N'$sum');"
  echo "${!name_var}: applied"
done
sql -Q "IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'${FUNCTION_IDENTITY}') CREATE USER [${FUNCTION_IDENTITY}] FROM EXTERNAL PROVIDER; GRANT SELECT, INSERT ON dbo.anomalies TO [${FUNCTION_IDENTITY}]; GRANT SELECT, INSERT, UPDATE ON dbo.incident_trackers TO [${FUNCTION_IDENTITY}]; GRANT SELECT, INSERT, UPDATE ON dbo.incidents TO [${FUNCTION_IDENTITY}]; GRANT SELECT, INSERT ON dbo.incident_messages TO [${FUNCTION_IDENTITY}];"
if [ -n "${READER_GROUP}" ]; then
  sql -Q "IF NOT EXISTS (SELECT 1 FROM sys.database_principals WHERE name = N'${READER_GROUP}') CREATE USER [${READER_GROUP}] FROM EXTERNAL PROVIDER; ALTER ROLE db_datareader ADD MEMBER [${READER_GROUP}];"
fi
echo "{\"database\": \"${SQL_DATABASE}\", \"functionUser\": \"${FUNCTION_IDENTITY}\"}" > "$AZ_SCRIPTS_OUTPUT_PATH"
