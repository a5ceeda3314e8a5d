{{/* Chart name, truncated to the 63 characters DNS labels allow. */}}
{{- define "ocr.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A Kubernetes memory quantity ("2Gi", "1536Mi", "2G", "2147483648") in MiB, rounded down. */}}
{{- define "ocr.memoryMiB" -}}
{{- $q := toString . -}}
{{- $num := regexFind "^[0-9]+(\\.[0-9]+)?" $q -}}
{{- if not $num }}{{ fail (printf "cannot read the memory quantity %q" $q) }}{{ end -}}
{{- $unit := trimPrefix $num $q -}}
{{- $bytes := dict "" 1.0 "k" 1000.0 "K" 1000.0 "M" 1000000.0 "G" 1000000000.0 "T" 1000000000000.0 "Ki" 1024.0 "Mi" 1048576.0 "Gi" 1073741824.0 "Ti" 1099511627776.0 -}}
{{- if not (hasKey $bytes $unit) }}{{ fail (printf "unknown unit in the memory quantity %q" $q) }}{{ end -}}
{{- divf (mulf (float64 $num) (get $bytes $unit)) 1048576.0 | floor | int -}}
{{- end }}

{{/* The pod's termination grace: the request deadline plus the drain plus margins, unless set. The
service's own grace (OCR_SHUTDOWN_GRACE_S) is this less the drain delay less 5 s before SIGKILL. */}}
{{- define "ocr.terminationGrace" -}}
{{- $c := .Values.config -}}
{{- $least := add (int $c.requestTimeoutSeconds) (int $c.shutdownDelaySeconds) 6 -}}
{{- $grace := .Values.terminationGracePeriodSeconds | default (add $least 4) | int -}}
{{- if lt $grace $least }}{{ fail (printf "terminationGracePeriodSeconds (%d) must cover config.requestTimeoutSeconds + config.shutdownDelaySeconds + 6 = %d, so that requests admitted before SIGTERM can finish" $grace $least) }}{{ end -}}
{{- $grace -}}
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
