{{/* Chart name, trimmed to the 63-char label limit. */}}
{{- define "mdp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "mdp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Common labels; pass a dict with "ctx" (root) and "component". */}}
{{- define "mdp.labels" -}}
helm.sh/chart: {{ include "mdp.chart" .ctx }}
app.kubernetes.io/name: {{ include "mdp.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: mini-data-platform
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "mdp.selectorLabels" -}}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Secret names: the existing one when given, else the chart's own. */}}
{{- define "mdp.s3SecretName" -}}
{{- default "mdp-s3" .Values.credentials.s3.existingSecret -}}
{{- end -}}
{{- define "mdp.postgresSecretName" -}}
{{- default "mdp-postgres" .Values.credentials.postgres.existingSecret -}}
{{- end -}}

{{/*
A credential: the value given, else the one already stored in the Secret (so upgrades keep it),
else a new random one. Args: list root secretName key givenValue length.
*/}}
{{- define "mdp.credential" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $key := index . 2 -}}
{{- $given := index . 3 -}}
{{- $len := index . 4 -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $name -}}
{{- if and $existing (index $existing.data $key) -}}
{{- index $existing.data $key | b64dec -}}
{{- else -}}
{{- randAlphaNum $len -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Restricted-profile container security context (non-root, read-only where possible). */}}
{{- define "mdp.containerSecurityContext" -}}
allowPrivilegeEscalation: false
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod security context; arg: the uid the image's files belong to. */}}
{{- define "mdp.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "mdp.postgresHost" -}}
{{- printf "%s.%s.svc.cluster.local" .Values.postgres.serviceName .Release.Namespace -}}
{{- end -}}
{{- define "mdp.s3Endpoint" -}}
{{- printf "http://%s.%s.svc.cluster.local:%d" .Values.s3.serviceName .Release.Namespace (int .Values.s3.apiPort) -}}
{{- end -}}
