{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "aio.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Resource name prefix: the release name, with the chart name unless it already has it. */}}
{{- define "aio.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "aio.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "aio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels of the server's resources, of Envoy's, and of the migration hook's. */}}
{{- define "aio.labels" -}}
{{ include "aio.commonLabels" . }}
app.kubernetes.io/component: server
{{- end -}}
{{- define "aio.envoyLabels" -}}
{{ include "aio.commonLabels" . }}
app.kubernetes.io/component: envoy
{{- end -}}
{{- define "aio.migrationLabels" -}}
{{ include "aio.commonLabels" . }}
app.kubernetes.io/component: migration
{{- end -}}

{{/* Selector of the service's pods (Envoy's pods carry another component). */}}
{{- define "aio.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "aio.envoySelectorLabels" -}}
app.kubernetes.io/name: {{ include "aio.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: envoy
{{- end -}}

{{- define "aio.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "aio.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "aio.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secret holding AIO_DATABASE_URL, AIO_REDIS_URL, AIO_AUTH_HS256_SECRET and secretEnv. */}}
{{- define "aio.secretName" -}}
{{- default (include "aio.fullname" .) .Values.existingSecret -}}
{{- end -}}

{{/* Mount points of the files the chart hands the service. */}}
{{- define "aio.authDir" -}}/etc/ai-orchestration/auth{{- end -}}
{{- define "aio.llmDir" -}}/etc/ai-orchestration/llm{{- end -}}
{{- define "aio.mcpDir" -}}/etc/ai-orchestration/mcp{{- end -}}

{{/* Whether the chart mounts a JWT public key / JWKS file (inline value or existing Secret). */}}
{{- define "aio.hasPublicKey" -}}
{{- if or .Values.auth.publicKeyPem (and .Values.auth.existingKeysSecret.name .Values.auth.existingKeysSecret.publicKeyKey) -}}true{{- end -}}
{{- end -}}
{{- define "aio.hasJwks" -}}
{{- if or .Values.auth.jwks (and .Values.auth.existingKeysSecret.name .Values.auth.existingKeysSecret.jwksKey) -}}true{{- end -}}
{{- end -}}
{{- define "aio.hasLlmConfig" -}}
{{- if or .Values.llm.routing .Values.llm.existingConfigMap -}}true{{- end -}}
{{- end -}}
{{- define "aio.hasMcpServers" -}}
{{- if or .Values.mcp.servers .Values.mcp.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{/* Whether a shared database is configured: a URL in values, or an existing Secret (which
must then carry AIO_DATABASE_URL). Without one the pod uses SQLite in its data volume. */}}
{{- define "aio.sharedDatabase" -}}
{{- if or .Values.database.url .Values.existingSecret -}}true{{- end -}}
{{- end -}}

{{/*
The HS256 secret: the value given, else (when no other key is configured) a random one made on
install and kept on upgrades, so `helm install` with no values yields a server that starts.
*/}}
{{- define "aio.hs256Secret" -}}
{{- if .Values.auth.hs256Secret -}}
{{- .Values.auth.hs256Secret -}}
{{- else if and .Values.auth.generateHs256Secret (not (include "aio.hasPublicKey" .)) (not (include "aio.hasJwks" .)) -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "aio.fullname" .) -}}
{{- if and $existing $existing.data (index $existing.data "AIO_AUTH_HS256_SECRET") -}}
{{- index $existing.data "AIO_AUTH_HS256_SECRET" | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A setting's value as the service parses it: strings as they are, anything else as JSON
(so 16777216 stays 16777216, not 1.6777216e+07, and maps become JSON objects). */}}
{{- define "aio.settingValue" -}}
{{- if kindIs "string" . -}}{{ . }}{{- else -}}{{ toJson . }}{{- end -}}
{{- end -}}

{{/* Settings the chart derives from other values; `config` may not set them. */}}
{{- define "aio.managedSettings" -}}
host port metrics_port data_dir database_url redis_url auth_hs256_secret auth_public_key_file auth_jwks_file llm_config_file mcp_servers_file
{{- end -}}

{{/* Checks that fail the render with a message saying what to change. */}}
{{- define "aio.validate" -}}
{{- $managed := splitList " " (include "aio.managedSettings" .) -}}
{{- range $key, $_ := .Values.config -}}
{{- if has $key $managed -}}
{{- fail (printf "config.%s is set by the chart: use ports.grpc, ports.metrics, dataVolume, database.url, redis.url, auth.*, llm.* or mcp.* instead" $key) -}}
{{- end -}}
{{- if ne $key (lower $key) -}}
{{- fail (printf "config.%s: keys are the service's setting names in lower case (see ai_orchestration/config.py), e.g. workflow_concurrency" $key) -}}
{{- end -}}
{{- end -}}
{{- if and (not (include "aio.sharedDatabase" .)) (or (gt (int .Values.replicaCount) 1) .Values.autoscaling.enabled) -}}
{{- fail "more than one replica needs a shared database: set database.url (PostgreSQL) or existingSecret with AIO_DATABASE_URL" -}}
{{- end -}}
{{- if and .Values.existingSecret (or .Values.database.url .Values.redis.url .Values.auth.hs256Secret .Values.secretEnv) -}}
{{- fail "existingSecret replaces the chart's Secret: put AIO_DATABASE_URL, AIO_REDIS_URL, AIO_AUTH_HS256_SECRET and provider keys in it, not in database.url, redis.url, auth.hs256Secret or secretEnv" -}}
{{- end -}}
{{- if and (not .Values.existingSecret) (not (include "aio.hs256Secret" .)) (not (include "aio.hasPublicKey" .)) (not (include "aio.hasJwks" .)) -}}
{{- fail "the server listens on 0.0.0.0 and refuses to start without authentication: set auth.hs256Secret, auth.publicKeyPem, auth.jwks, auth.existingKeysSecret or existingSecret (or leave auth.generateHs256Secret on)" -}}
{{- end -}}
{{- $grace := float64 (include "aio.shutdownGrace" .) -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- if le (float64 .Values.terminationGracePeriodSeconds) (addf $grace .Values.preStopSleepSeconds) -}}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed preStopSleepSeconds + config.shutdown_grace_seconds (%v): the kubelet would kill RPCs the server is still draining" .Values.terminationGracePeriodSeconds (addf $grace .Values.preStopSleepSeconds)) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* config.shutdown_grace_seconds, or the service's default when it is not set. */}}
{{- define "aio.shutdownGrace" -}}
{{- $grace := index .Values.config "shutdown_grace_seconds" -}}
{{- if kindIs "invalid" $grace -}}15{{- else -}}{{ $grace }}{{- end -}}
{{- end -}}

{{/* preStop sleep + drain grace + time to hand runs back and close connections. */}}
{{- define "aio.terminationGracePeriodSeconds" -}}
{{- if .Values.terminationGracePeriodSeconds -}}
{{- .Values.terminationGracePeriodSeconds -}}
{{- else -}}
{{- $grace := float64 (include "aio.shutdownGrace" .) -}}
{{- addf $grace .Values.preStopSleepSeconds 15 | ceil | int -}}
{{- end -}}
{{- end -}}

{{/* The in-cluster DNS name Envoy resolves to reach every ready replica. */}}
{{- define "aio.headlessHost" -}}
{{- printf "%s-headless.%s.svc.%s" (include "aio.fullname" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}
