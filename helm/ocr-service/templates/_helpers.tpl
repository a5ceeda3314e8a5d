{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "ocr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name. */}}
{{- define "ocr.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ocr.tritonName" -}}
{{- printf "%s-triton" (include "ocr.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ocr.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ocr.labels" -}}
helm.sh/chart: {{ include "ocr.chart" . }}
app.kubernetes.io/name: {{ include "ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of the service pods. */}}
{{- define "ocr.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: api
{{- end }}

{{/* Selector labels of the Triton pods. */}}
{{- define "ocr.tritonSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: triton
{{- end }}

{{- define "ocr.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "ocr.secretName" -}}
{{- default (printf "%s-tokens" (include "ocr.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/* Tokens for the created Secret: the given ones, else the ones already installed, else a new random one. */}}
{{- define "ocr.tokens" -}}
{{- if .Values.auth.tokens }}
{{- join "\n" .Values.auth.tokens }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "ocr.secretName" .) }}
{{- if and $existing (index $existing.data .Values.auth.secretKey) }}
{{- index $existing.data .Values.auth.secretKey | b64dec }}
{{- else }}
{{- randAlphaNum 43 }}
{{- end }}
{{- end }}
{{- end }}
