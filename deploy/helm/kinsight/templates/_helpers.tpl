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

{{/* Where agents ship: this release's server Service, or server.url. */}}
{{- define "kinsight.serverUrl" -}}
{{- if .Values.server.enabled -}}
{{- printf "http://%s-server.%s.svc:%d" (include "kinsight.fullname" .) .Release.Namespace (int .Values.server.service.port) -}}
{{- else -}}
{{- required "server.url is required when server.enabled is false" .Values.server.url -}}
{{- end -}}
{{- end -}}

{{/* The agent configuration (reference §4.1 shape). Chart-owned keys win over agent.config. */}}
{{- define "kinsight.agentConfig" -}}
{{- $k8s := dict "cluster_name" .Values.clusterName "metrics_collection_interval" (int .Values.metricsCollectionInterval) "enhanced_container_insights" .Values.enhanced -}}
{{- $logs := dict "metrics_collected" (dict "kubernetes" $k8s) "force_flush_interval" (int .Values.forceFlushInterval) -}}
{{- $own := dict "host_root" "/rootfs" "state_dir" "/var/lib/kinsight-agent" "server_url" (include "kinsight.serverUrl" .) "log_group_prefix" .Values.logGroupPrefix -}}
{{- $kinsight := mergeOverwrite (deepCopy .Values.agent.config) $own -}}
{{- dict "logs" $logs "kinsight" $kinsight | toPrettyJson -}}
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
