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

{{/* Pod-level fields every Deployment shares. Call with (dict "root" $ "values" .Values.api). */}}
{{- define "vap.podCommon" -}}
# No Service links: a Service named e.g. "vap" would inject VAP_PORT=tcp://... into the settings namespace.
enableServiceLinks: false
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
