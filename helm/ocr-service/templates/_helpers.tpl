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

{{/* Labels of every object: the selector labels' name and instance, once each, plus the chart's. */}}
{{- define "ocr.labels" -}}
helm.sh/chart: {{ include "ocr.chart" . }}
{{ include "ocr.baseSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ocr.baseSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ocr.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of the service pods. */}}
{{- define "ocr.selectorLabels" -}}
{{ include "ocr.baseSelectorLabels" . }}
app.kubernetes.io/component: api
{{- end }}

{{/* Selector labels of the Triton pods. */}}
{{- define "ocr.tritonSelectorLabels" -}}
{{ include "ocr.baseSelectorLabels" . }}
app.kubernetes.io/component: triton
{{- end }}

{{/* Selector labels of the `helm test` pod. */}}
{{- define "ocr.testSelectorLabels" -}}
{{ include "ocr.baseSelectorLabels" . }}
app.kubernetes.io/component: test
{{- end }}

{{/* The chart's labels and extra ones, each key once: (dict "root" $ "component" "api" "extra" .Values.podLabels);
component is optional. The chart's labels win (a podLabels key must not break the selectors). */}}
{{- define "ocr.mergedLabels" -}}
{{- $own := include "ocr.labels" .root | fromYaml -}}
{{- with .component }}{{ $_ := set $own "app.kubernetes.io/component" . }}{{ end -}}
{{- toYaml (merge $own (deepCopy (.extra | default dict))) -}}
{{- end }}

{{/* A pod's topologySpreadConstraints: a constraint without a labelSelector gets the pods' selector labels.
(dict "constraints" .Values.topologySpreadConstraints "selector" (include "ocr.selectorLabels" .)) */}}
{{- define "ocr.topologySpread" -}}
{{- $out := list -}}
{{- range .constraints -}}
{{- $c := deepCopy . -}}
{{- if not (hasKey $c "labelSelector") -}}
{{- $_ := set $c "labelSelector" (dict "matchLabels" ($.selector | fromYaml)) -}}
{{- end -}}
{{- $out = append $out $c -}}
{{- end -}}
{{- toYaml $out -}}
{{- end }}

{{/* An image reference: (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion "key" "image").
global.imageRegistry wins over image.registry; a digest wins over the tag. */}}
{{- define "ocr.imageRef" -}}
{{- $img := .image -}}
{{- $registry := (.global | default dict).imageRegistry | default $img.registry | default "" -}}
{{- $first := regexFind "^[^/]+" $img.repository -}}
{{- if and $registry (contains "/" $img.repository) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- fail (printf "%s.repository %q starts with a registry (%s) and a registry is set (%s): put the registry in %s.registry (or global.imageRegistry) and the path in %s.repository" .key $img.repository $first $registry .key .key) -}}
{{- end -}}
{{- $repo := ternary (printf "%s/%s" $registry $img.repository) $img.repository (ne $registry "") -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $repo $img.digest -}}
{{- else -}}
{{- $tag := default .default $img.tag -}}
{{- if not $tag }}{{ fail (printf "%s.tag or %s.digest is required" .key .key) }}{{ end -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}
{{- end }}

{{- define "ocr.image" -}}
{{- include "ocr.imageRef" (dict "image" .Values.image "global" .Values.global "default" .Chart.AppVersion "key" "image") -}}
{{- end }}

{{- define "ocr.tritonImage" -}}
{{- include "ocr.imageRef" (dict "image" .Values.triton.image "global" .Values.global "default" "" "key" "triton.image") -}}
{{- end }}

{{- define "ocr.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ocr.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end }}

{{/* The `job` label of the API's and Triton's series: the Service names (what a ServiceMonitor gives), unless set. */}}
{{- define "ocr.apiJob" -}}
{{- default (include "ocr.fullname" .) .Values.monitoring.apiJob -}}
{{- end }}

{{- define "ocr.tritonJob" -}}
{{- default (include "ocr.tritonName" .) .Values.monitoring.tritonJob -}}
{{- end }}

{{/* files/alert-rules.yml with this release's namespace, jobs and runbook page in place of the file's
(namespace="ocr", job="ocr-service", job="ocr-service-triton": what `helm install ocr-service -n ocr`
gives). Without Triton the triton group is left out. */}}
{{- define "ocr.alertRules" -}}
{{- $text := .Files.Get "files/alert-rules.yml" -}}
{{- $text = $text | replace "job=\"ocr-service-triton\"" (printf "job=%q" (include "ocr.tritonJob" .)) -}}
{{- $text = $text | replace "job=\"ocr-service\"" (printf "job=%q" (include "ocr.apiJob" .)) -}}
{{- $text = $text | replace "namespace=\"ocr\"" (printf "namespace=%q" .Release.Namespace) -}}
{{- $text = $text | replace "https://github.com/example/ocr-service/blob/main/docs/operations.md#" (printf "%s#" (trimSuffix "/" .Values.monitoring.runbookBaseUrl)) -}}
{{- $rules := $text | fromYaml -}}
{{- if ne .Values.backend "triton" -}}
{{- $groups := list -}}
{{- range $rules.groups }}{{ if ne .name "triton" }}{{ $groups = append $groups . }}{{ end }}{{ end -}}
{{- $_ := set $rules "groups" $groups -}}
{{- end -}}
{{- toYaml $rules -}}
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
{{- else if .Values.auth.generateToken }}
{{- randAlphaNum 43 }}
{{- else }}
{{- fail "auth.generateToken is false: set auth.existingSecret (the way for GitOps: Argo CD and Flux render without the cluster, so a generated token would change on every render) or auth.tokens" }}
{{- end }}
{{- end }}
{{- end }}

{{/* OCR jobs of this release (holding a slot plus queued for one), summed over its pods: the KEDA
trigger's query. Both gauges in one selector, so the sum holds when either series is missing. */}}
{{- define "ocr.jobsQuery" -}}
{{- printf "sum({__name__=~\"ocr_jobs_in_flight|ocr_jobs_waiting\", namespace=%q, job=%q})" .Release.Namespace (include "ocr.apiJob" .) -}}
{{- end }}

{{/* The prometheus-adapter rule for the HPA's jobs-per-pod metric (files/prometheus-adapter-rules.yml). */}}
{{- define "ocr.adapterRules" -}}
{{- .Files.Get "files/prometheus-adapter-rules.yml" | replace "ocr_jobs_per_pod" .Values.autoscaling.prometheusAdapter.metricName -}}
{{- end }}
