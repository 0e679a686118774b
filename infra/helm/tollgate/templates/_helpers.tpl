{{/*
Shared pieces of the Tollgate chart. Environment variables are named after the services'
settings (TOLLGATE_<SERVICE>_<FIELD>); tests/test_deploy_config.py renders the chart and
fails on any name a service does not have, so a renamed setting breaks the test, not a
release.
*/}}

{{- define "tollgate.labels" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "tollgate.selector" -}}
app.kubernetes.io/name: tollgate
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "tollgate.image" -}}
"{{ .Values.image.repository }}:{{ .Values.image.tag }}"
{{- end }}

{{/* An env entry read from the operator's secret; `optional` only where the setting has a
safe empty default (the notifier refuses SMS webhooks without their secret). */}}
{{- define "tollgate.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secretName }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end }}
