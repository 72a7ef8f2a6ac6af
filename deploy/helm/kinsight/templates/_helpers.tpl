{{/* Base name of every object: the release name, suffixed with "-kinsight" unless it already says so. */}}
{{- define "kinsight.fullname" -}}
{{- if contains "kinsight" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-kinsight" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kinsight.labels" -}}
app.kubernetes.io/name: kinsight
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of one component: include "kinsight.selectorLabels" (list . "agent") */}}
{{- define "kinsight.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: kinsight
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kinsight.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "kinsight.tokensSecret" -}}
{{- .Values.tokens.existingSecret | default (printf "%s-tokens" (include "kinsight.fullname" .)) -}}
{{- end -}}

{{- define "kinsight.objectStoreSecret" -}}
{{- .Values.objectStorage.existingSecret | default (printf "%s-object-store" (include "kinsight.fullname" .)) -}}
{{- end -}}

{{/* Whether this release's server serves HTTPS (server.tls.enabled), checked for a source. */}}
{{- define "kinsight.tls" -}}
{{- $t := .Values.server.tls -}}
{{- if and .Values.server.enabled $t.enabled -}}
{{- if and (not $t.secretName) (not $t.certManager.enabled) -}}
{{- fail "server.tls.enabled needs server.tls.secretName or server.tls.certManager.enabled" -}}
{{- end -}}
{{- if and $t.certManager.enabled (not $t.certManager.issuerRef.name) -}}
{{- fail "server.tls.certManager.issuerRef.name is required when server.tls.certManager.enabled is true" -}}
{{- end -}}
true
{{- end -}}
{{- end -}}

{{/* The Secret with the server's tls.crt / tls.key (and the agents' CA). */}}
{{- define "kinsight.tlsSecret" -}}
{{- .Values.server.tls.secretName | default (printf "%s-server-tls" (include "kinsight.fullname" .)) -}}
{{- end -}}

{{/* Where the agents find the CA of the server's certificate (kinsight.server_ca_file). */}}
{{- define "kinsight.serverCaDir" -}}/etc/kinsight/server-ca{{- end -}}

{{/* Where agents ship: this release's server Service, or server.url. */}}
{{- define "kinsight.serverUrl" -}}
{{- if .Values.server.enabled -}}
{{- printf "%s://%s-server.%s.svc:%d" (ternary "https" "http" (eq (include "kinsight.tls" .) "true")) (include "kinsight.fullname" .) .Release.Namespace (int .Values.server.service.port) -}}
{{- else -}}
{{- required "server.url is required when server.enabled is false" .Values.server.url -}}
{{- end -}}
{{- end -}}

{{/* The agent configuration (reference §4.1 shape). Chart-owned keys win over agent.config. */}}
{{- define "kinsight.agentConfig" -}}
{{- $k8s := dict "cluster_name" .Values.clusterName "metrics_collection_interval" (int .Values.metricsCollectionInterval) "enhanced_container_insights" .Values.enhanced -}}
{{- if not (kindIs "invalid" .Values.accelerated.enabled) -}}
{{- $_ := set $k8s "accelerated_compute_metrics" .Values.accelerated.enabled -}}
{{- end -}}
{{- $logs := dict "metrics_collected" (dict "kubernetes" $k8s) "force_flush_interval" (int .Values.forceFlushInterval) -}}
{{- $own := dict "host_root" "/rootfs" "state_dir" "/var/lib/kinsight-agent" "server_url" (include "kinsight.serverUrl" .) "log_group_prefix" .Values.logGroupPrefix -}}
{{- if and (eq (include "kinsight.tls" .) "true") .Values.server.tls.caKey -}}
{{- $_ := set $own "server_ca_file" (printf "%s/%s" (include "kinsight.serverCaDir" .) .Values.server.tls.caKey) -}}
{{- end -}}
{{- if eq (include "kinsight.accelerated" .) "true" -}}
{{- if .Values.accelerated.dcgmExporter.enabled -}}
{{- $_ := set $own "dcgm_exporter_url" (printf "http://%s.%s.svc:%d/metrics" (include "kinsight.dcgmExporter" .) .Release.Namespace (int .Values.accelerated.dcgmExporter.port)) -}}
{{- else if .Values.accelerated.dcgmExporterUrl -}}
{{- $_ := set $own "dcgm_exporter_url" .Values.accelerated.dcgmExporterUrl -}}
{{- end -}}
{{- end -}}
{{- $kinsight := mergeOverwrite (deepCopy .Values.agent.config) $own -}}
{{- dict "logs" $logs "kinsight" $kinsight | toPrettyJson -}}
{{- end -}}

{{/* Whether the agents collect accelerated compute metrics: accelerated.enabled, or `enhanced`
when it is null (the agent's own default). */}}
{{- define "kinsight.accelerated" -}}
{{- if kindIs "invalid" .Values.accelerated.enabled -}}
{{- ternary "true" "false" .Values.enhanced -}}
{{- else -}}
{{- ternary "true" "false" .Values.accelerated.enabled -}}
{{- end -}}
{{- end -}}

{{/* The DCGM exporter's DaemonSet and Service (accelerated.dcgmExporter). */}}
{{- define "kinsight.dcgmExporter" -}}
{{- printf "%s-dcgm-exporter" (include "kinsight.fullname" .) -}}
{{- end -}}

{{/* The agent pod's supplementalGroups (agent.hostGroups, nulls left out), as a JSON list. */}}
{{- define "kinsight.agentGroups" -}}
{{- $groups := list -}}
{{- range $name := list "adm" "systemdJournal" -}}
{{- $gid := index $.Values.agent.hostGroups $name -}}
{{- if not (kindIs "invalid" $gid) -}}
{{- $groups = append $groups (int $gid) -}}
{{- end -}}
{{- end -}}
{{- range $.Values.agent.hostGroups.extra | default list -}}
{{- $groups = append $groups (int .) -}}
{{- end -}}
{{- toJson $groups -}}
{{- end -}}

{{/* The Secret holding the catalogue's URL: catalogue.existingSecret, or the chart's from catalogue.url. */}}
{{- define "kinsight.catalogueSecret" -}}
{{- .Values.catalogue.existingSecret | default (printf "%s-catalogue" (include "kinsight.fullname" .)) -}}
{{- end -}}

{{/* The bundled PostgreSQL's StatefulSet and Service. */}}
{{- define "kinsight.postgresql" -}}
{{- printf "%s-postgresql" (include "kinsight.fullname" .) -}}
{{- end -}}

{{/* The Secret with the bundled PostgreSQL's `password`. */}}
{{- define "kinsight.postgresqlSecret" -}}
{{- .Values.postgresql.existingSecret | default (include "kinsight.postgresql" .) -}}
{{- end -}}

{{/*
Where the server's PostgreSQL catalogue comes from: "url" (catalogue.url, into a chart-made
Secret), "secret" (catalogue.existingSecret), "postgresql" (the bundled one) or "" (none: the
embedded single-node catalogue). Checks the combinations and refuses what cannot work.
*/}}
{{- define "kinsight.catalogue" -}}
{{- $c := .Values.catalogue -}}
{{- $replicas := int .Values.server.replicas -}}
{{- if and $c.url $c.existingSecret -}}
{{- fail "catalogue.url and catalogue.existingSecret exclude each other: set one (the URL goes into a Secret either way)" -}}
{{- end -}}
{{- $mode := "" -}}
{{- if $c.url -}}
{{- $mode = "url" -}}
{{- else if $c.existingSecret -}}
{{- $mode = "secret" -}}
{{- else if .Values.postgresql.enabled -}}
{{- $mode = "postgresql" -}}
{{- end -}}
{{- if and .Values.server.enabled (gt $replicas 1) (not .Values.objectStorage.enabled) -}}
{{- fail (printf "server.replicas=%d needs a shared S3 bucket: set objectStorage.enabled=true and objectStorage.bucket (with its endpoint, region and credentials); every replica reads and writes the same s3://bucket/prefix. See docs/deploy.md, \"Highly available replicas\"." $replicas) -}}
{{- end -}}
{{- if and .Values.server.enabled (gt $replicas 1) (not $mode) -}}
{{- fail (printf "server.replicas=%d needs a shared PostgreSQL catalogue: set catalogue.url (postgres://USER:PASSWORD@HOST:PORT/DB), catalogue.existingSecret (a Secret with that URL under catalogue.secretKey) or postgresql.enabled=true (a bundled PostgreSQL, for trying it out). See docs/deploy.md, \"Highly available replicas\"." $replicas) -}}
{{- end -}}
{{- if and .Values.server.enabled $mode (not .Values.objectStorage.enabled) -}}
{{- fail "a PostgreSQL catalogue (catalogue.url, catalogue.existingSecret or postgresql.enabled) is shared by replicas that share one S3 bucket: set objectStorage.enabled=true and objectStorage.bucket too" -}}
{{- end -}}
{{- if and .Values.server.enabled (not .Values.server.persistence.enabled) (not $mode) -}}
{{- fail "server.persistence.enabled=false puts /data on an emptyDir, lost with the pod: only for replicas sharing S3 and a PostgreSQL catalogue (objectStorage.enabled and catalogue.url, catalogue.existingSecret or postgresql.enabled)" -}}
{{- end -}}
{{- $mode -}}
{{- end -}}
