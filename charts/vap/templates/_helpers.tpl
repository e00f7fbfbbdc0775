{{/* Names: "<release>-vap" unless the release name already says vap; components append "-api" etc. */}}
{{- define "vap.fullname" -}}
{{- if contains "vap" .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-vap" .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vap.selectorLabels" -}}
app.kubernetes.io/name: vap
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Call with (dict "root" $ "component" "api"). */}}
{{- define "vap.labels" -}}
{{ include "vap.selectorLabels" . }}
app.kubernetes.io/part-of: vap
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{/* Call with (dict "root" $ "image" .Values.images.api). */}}
{{- define "vap.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .root.Chart.AppVersion) -}}
{{- end -}}

{{- define "vap.watchNamespace" -}}
{{- .Values.operator.watchNamespace | default .Release.Namespace -}}
{{- end -}}

{{- define "vap.databaseSecretName" -}}
{{- .Values.database.existingSecret | default (printf "%s-database" (include "vap.fullname" .)) -}}
{{- end -}}

{{/* The database URL, from the chart's Secret or the user's; every process reads VAP_DATABASE__URL. */}}
{{- define "vap.databaseEnv" -}}
- name: VAP_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "vap.databaseSecretName" . }}
      key: {{ ternary .Values.database.existingSecretKey "url" (ne .Values.database.existingSecret "") }}
{{- end -}}

{{- define "vap.cameraKeysSecretName" -}}
{{- .Values.cameraKeys.existingSecret | default (printf "%s-camera-keys" (include "vap.fullname" .)) -}}
{{- end -}}

{{/* The keys that seal camera credentials (the API seals, the operator opens): VAP_CAMERA_KEYS. */}}
{{- define "vap.cameraKeysEnv" -}}
- name: VAP_CAMERA_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "vap.cameraKeysSecretName" . }}
      key: {{ ternary .Values.cameraKeys.existingSecretKey "keys" (ne .Values.cameraKeys.existingSecret "") }}
{{- end -}}

{{/* Settings every process shares (CommonSettings): one ConfigMap, loaded with envFrom. */}}
{{- define "vap.envFrom" -}}
- configMapRef:
    name: {{ include "vap.fullname" .root }}-common
- configMapRef:
    name: {{ include "vap.fullname" .root }}-{{ .component }}
{{- end -}}

{{/* Rolls the Pods when a ConfigMap changes (env vars are read once, at start). */}}
{{- define "vap.configChecksum" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- end -}}

{{/* Pod-level fields every Pod of the chart shares (the Deployments and the migration Job).
Call with (dict "root" $ "values" .Values.api). */}}
{{- define "vap.podCommon" -}}
# No Service links: a Service named e.g. "vap" would inject VAP_PORT=tcp://... into the settings namespace.
enableServiceLinks: false
{{- if .root.Values.hostNetwork }}
# The node's network (values.yaml hostNetwork), with cluster DNS still first.
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
volumes:
  - name: tmp
    emptyDir: {medium: Memory, sizeLimit: {{ .root.Values.tmpSizeLimit }}}
{{- end -}}

{{/* A Deployment's update strategy. On the node's network a new Pod cannot start next to the old
one (same ports), so the old one goes first; otherwise Kubernetes' default rolling update. */}}
{{- define "vap.deploymentStrategy" -}}
{{- if .Values.hostNetwork -}}
strategy:
  type: RollingUpdate
  rollingUpdate: {maxSurge: 0, maxUnavailable: 1}
{{- end -}}
{{- end -}}

{{/* With hostNetwork every port is one of the node's: the chart's ports must differ from each other
and stay out of runner.hostPorts. Renders nothing; fails the install otherwise. */}}
{{- define "vap.checkHostPorts" -}}
{{- if .Values.hostNetwork -}}
{{- $first := int .Values.runner.hostPorts.first -}}
{{- $last := int .Values.runner.hostPorts.last -}}
{{- if gt $first $last }}{{ fail "runner.hostPorts: first must not be above last" }}{{ end -}}
{{- $ports := dict "api.port" .Values.api.port "relay.metricsPort" .Values.relay.metricsPort "inbox.metricsPort" .Values.inbox.metricsPort "operator.metricsPort" .Values.operator.metricsPort "operator.healthPort" .Values.operator.healthPort -}}
{{- $seen := dict -}}
{{- range $name, $port := $ports -}}
{{- $key := toString (int $port) -}}
{{- if hasKey $seen $key }}{{ fail (printf "hostNetwork: %s and %s are both port %s of the node" (get $seen $key) $name $key) }}{{ end -}}
{{- $_ := set $seen $key $name -}}
{{- if and (ge (int $port) $first) (le (int $port) $last) }}{{ fail (printf "hostNetwork: %s (%s) is inside runner.hostPorts (%d-%d)" $name $key $first $last) }}{{ end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A probe's httpGet, to probeHost when set. Call with (dict "root" $ "path" "/healthz" "port" "http"). */}}
{{- define "vap.httpGet" -}}
httpGet: {path: {{ .path }}, port: {{ .port }}{{ with .root.Values.probeHost }}, host: {{ . | quote }}{{ end }}}
{{- end -}}

{{- define "vap.containerSecurity" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
volumeMounts:
  - {name: tmp, mountPath: /tmp}
{{- end -}}

{{/* VAP_* settings a user added under <component>.settings (values must be strings in a ConfigMap). */}}
{{- define "vap.extraSettings" -}}
{{- range $name, $value := . }}
{{ $name }}: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* The API server's address for in-cluster clients (values.yaml kubernetesApi): container env wins
over the kubelet's injected `kubernetes` Service variables. The Pod's own ServiceAccount token as ever. */}}
{{- define "vap.kubernetesApiEnv" -}}
{{- with .Values.kubernetesApi.host }}
- name: KUBERNETES_SERVICE_HOST
  value: {{ . | quote }}
{{- end }}
{{- with .Values.kubernetesApi.port }}
- name: KUBERNETES_SERVICE_PORT
  value: {{ . | quote }}
{{- end }}
{{- end -}}
