{{- /*
A hook Job that makes a Secret of random values once, in the cluster (`kinsight tokens
ensure-secret`), with its ServiceAccount and a Role limited to that Secret. The chart renders
nothing random itself (docs/deploy.md, "Tokens with Helm and GitOps"). Used for the tokens
(tokens-job.yaml) and the bundled PostgreSQL's password (postgresql.yaml):

  include "kinsight.secretJob" (dict "root" . "component" "tokens" "container" "tokens"
    "what" "tokens" "secret" $name "keys" (list))

Objects are named <fullname>-<component>; `what` names the Secret in the Role's comments;
`keys` empty: the command's default keys (admin-token, ingest-token).
*/}}
{{- define "kinsight.secretJob" -}}
{{- $root := .root }}
{{- $name := printf "%s-%s" (include "kinsight.fullname" $root) .component }}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kinsight.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kinsight.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
rules:
  # `kinsight tokens ensure-secret` creates the {{ .what }} Secret. A create request carries no
  # object name to the authorizer, so this rule cannot be narrowed by resourceNames; it is
  # narrowed to this namespace instead.
  - apiGroups: [""]
    resources: ["secrets"]
    verbs: ["create"]
  # `kinsight tokens ensure-secret` reads it, and adds a key it lacks or the keep annotation
  # (a merge patch, never changing a value): only the {{ .what }} Secret.
  - apiGroups: [""]
    resources: ["secrets"]
    resourceNames: [{{ .secret | quote }}]
    verbs: ["get", "patch"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kinsight.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-10"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: {{ $name }}
subjects:
  - kind: ServiceAccount
    name: {{ $name }}
    namespace: {{ $root.Release.Namespace }}
---
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kinsight.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "0"
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  backoffLimit: 4
  # Without hooks nothing deletes it: it goes by itself an hour after it finished.
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        {{- include "kinsight.selectorLabels" (list $root .component) | nindent 8 }}
    spec:
      serviceAccountName: {{ $name }}
      restartPolicy: OnFailure
      nodeSelector:
        kubernetes.io/os: linux
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      # No privilege at all (Pod Security `restricted`).
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: {{ .container }}
          image: {{ include "kinsight.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["/usr/local/bin/kinsight"]
          args:
            - tokens
            - ensure-secret
            - --name
            - {{ .secret }}
            - --namespace
            - {{ $root.Release.Namespace }}
            {{- range .keys }}
            - --key
            - {{ . }}
            {{- end }}
            - --label
            - app.kubernetes.io/name=kinsight
            - --label
            - app.kubernetes.io/instance={{ $root.Release.Name }}
          resources:
            requests:
              cpu: 10m
              memory: 32Mi
            limits:
              cpu: 100m
              memory: 64Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: ["ALL"]
{{- end }}
