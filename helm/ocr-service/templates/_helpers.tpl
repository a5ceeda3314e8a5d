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

{{/* A PodDisruptionBudget's budget: (dict "pdb" values "replicas" n "what" values-path). maxUnavailable
unless minAvailable is set; a whole-number minAvailable at or above the replicas would let no node
drain finish, so it fails to render. */}}
{{- define "ocr.pdbBudget" -}}
{{- $min := .pdb.minAvailable -}}
{{- if and (not (kindIs "invalid" $min)) (ne (toString $min) "") -}}
{{- if and (not (kindIs "string" $min)) (ge (int $min) (int .replicas)) -}}
{{- fail (printf "%s.minAvailable (%d) must be below the replicas (%d): with it no voluntary disruption (a node drain) could ever finish; use %s.maxUnavailable" .what (int $min) (int .replicas) .what) -}}
{{- end -}}
minAvailable: {{ $min }}
{{- else -}}
maxUnavailable: {{ .pdb.maxUnavailable }}
{{- end -}}
{{- end }}

{{/* A Deployment's update strategy: (dict "strategy" values "gpus" bool). Pods that take GPUs roll one
at a time without a surge pod, so a rollout never waits for a spare GPU. */}}
{{- define "ocr.strategy" -}}
{{- if .strategy -}}
{{- toYaml .strategy -}}
{{- else if .gpus -}}
type: RollingUpdate
rollingUpdate: {maxSurge: 0, maxUnavailable: 1}
{{- else -}}
type: RollingUpdate
rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}
{{- end -}}
{{- end }}

{{/* Triton's grace period: the drain (preStop) and the exit timeout must fit in it. */}}
{{- define "ocr.tritonGrace" -}}
{{- $t := .Values.triton -}}
{{- $least := add (int $t.drainSeconds) (int $t.exitTimeoutSeconds) -}}
{{- $grace := $t.terminationGracePeriodSeconds | default (add $least 10) | int -}}
{{- if le $grace $least }}{{ fail (printf "triton.terminationGracePeriodSeconds (%d) must exceed triton.drainSeconds + triton.exitTimeoutSeconds = %d: Triton would be killed before its requests finish" $grace $least) }}{{ end -}}
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

{{/* A name of the release's own with a suffix: the full name cut so that the suffix always fits in
63 characters, so it never collapses onto the full name (or another suffixed name) for long
release names. (dict "root" . "suffix" "triton") */}}
{{- define "ocr.suffixedName" -}}
{{- $room := sub 62 (len .suffix) | int -}}
{{- printf "%s-%s" (include "ocr.fullname" .root | trunc $room | trimSuffix "-") .suffix }}
{{- end }}

{{- define "ocr.tritonName" -}}
{{- include "ocr.suffixedName" (dict "root" . "suffix" "triton") }}
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

{{/* The service image; with gpu.enabled its GPU variant: the tag (image.tag, else appVersion) + gpu.tagSuffix
(a digest is taken as it is: the GPU image's). */}}
{{- define "ocr.image" -}}
{{- $img := .Values.image -}}
{{- if and (eq (include "ocr.embeddedGpu" .) "true") (not $img.digest) -}}
{{- $img = merge (dict "tag" (printf "%s%s" ($img.tag | default .Chart.AppVersion) .Values.gpu.tagSuffix)) (deepCopy $img) -}}
{{- end -}}
{{- include "ocr.imageRef" (dict "image" $img "global" .Values.global "default" .Chart.AppVersion "key" "image") -}}
{{- end }}

{{/* The image Triton's copy-models init container takes the model folders from: the service image of
the chart's own appVersion (not image.tag), or triton.modelRepository.image, so that bumping the API
image (image.tag, image.digest) leaves the Triton pod template, and Triton's GPUs, untouched. */}}
{{- define "ocr.modelsImage" -}}
{{- $m := .Values.triton.modelRepository.image -}}
{{- $img := dict "registry" ($m.registry | default .Values.image.registry) "repository" ($m.repository | default .Values.image.repository) "tag" ($m.tag | default .Chart.AppVersion) "digest" $m.digest -}}
{{- include "ocr.imageRef" (dict "image" $img "global" .Values.global "default" .Chart.AppVersion "key" "triton.modelRepository.image") -}}
{{- end }}

{{/* "true" when the embedded backend runs on GPUs (gpu.enabled); the render fails with backend triton. */}}
{{- define "ocr.embeddedGpu" -}}
{{- if .Values.gpu.enabled -}}
{{- if ne .Values.backend "embedded" }}{{ fail "gpu.enabled runs the embedded backend on GPUs: with backend triton the GPUs are Triton's (triton.gpus), and the API pods need none" }}{{ end -}}
true
{{- end -}}
{{- end }}

{{/* The API container's resources; with gpu.enabled plus gpu.count of gpu.resourceName (requests and limits). */}}
{{- define "ocr.apiResources" -}}
{{- $res := deepCopy (.Values.resources | default dict) -}}
{{- if eq (include "ocr.embeddedGpu" .) "true" -}}
{{- range $kind := list "requests" "limits" -}}
{{- $_ := set $res $kind (merge (dict $.Values.gpu.resourceName (int $.Values.gpu.count)) (get $res $kind | default dict)) -}}
{{- end -}}
{{- end -}}
{{- toYaml $res -}}
{{- end }}

{{- define "ocr.tritonImage" -}}
{{- include "ocr.imageRef" (dict "image" .Values.triton.image "global" .Values.global "default" "" "key" "triton.image") -}}
{{- end }}

{{- define "ocr.tritonServiceAccountName" -}}
{{- if .Values.triton.serviceAccount.create -}}
{{- default (include "ocr.tritonName" .) .Values.triton.serviceAccount.name -}}
{{- else -}}
{{- default (include "ocr.serviceAccountName" .) .Values.triton.serviceAccount.name -}}
{{- end -}}
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
{{- default (include (ternary "ocr.tritonMetricsName" "ocr.tritonName" (eq (include "ocr.tritonColocated" .) "true")) .) .Values.monitoring.tritonJob -}}
{{- end }}

{{/* The label matchers that pick the API's and Triton's series, for alerts and scaling queries.
With a ServiceMonitor, or a job named in monitoring.*Job: that job. With annotation scraping only
(metrics.annotations, no ServiceMonitor), Prometheus' conventional jobs (prometheus-community's
chart: `kubernetes-pods` for annotated pods, `kubernetes-service-endpoints` for annotated
Services) hold every annotated target of the cluster, so the pod's or Service's own labels, which
those jobs copy onto the series (labelmap), pick this release's component. */}}
{{- define "ocr.annotationOnly" -}}
{{- and .Values.metrics.annotations (not .Values.metrics.serviceMonitor.enabled) -}}
{{- end }}

{{- define "ocr.apiMatch" -}}
{{- if and (not .Values.monitoring.apiJob) (eq (include "ocr.annotationOnly" .) "true") -}}
job="kubernetes-pods", app_kubernetes_io_instance={{ .Release.Name | quote }}, app_kubernetes_io_component="api"
{{- else -}}
job={{ include "ocr.apiJob" . | quote }}
{{- end -}}
{{- end }}

{{- define "ocr.tritonMatch" -}}
{{- if and (not .Values.monitoring.tritonJob) (eq (include "ocr.annotationOnly" .) "true") -}}
job={{ ternary "kubernetes-service-endpoints" "kubernetes-pods" (eq (include "ocr.tritonColocated" .) "true") | quote }}, app_kubernetes_io_instance={{ .Release.Name | quote }}, app_kubernetes_io_component="triton"
{{- else -}}
job={{ include "ocr.tritonJob" . | quote }}
{{- end -}}
{{- end }}

{{/* files/alert-rules.yml with this release's namespace, jobs and runbook page in place of the file's
(namespace="ocr", job="ocr-service", job="ocr-service-triton": what `helm install ocr-service -n ocr`
gives). Without Triton the triton group is left out. */}}
{{- define "ocr.alertRules" -}}
{{- $text := .Files.Get "files/alert-rules.yml" -}}
{{- $text = $text | replace "job=\"ocr-service-triton\"" (include "ocr.tritonMatch" .) -}}
{{- $text = $text | replace "job=\"ocr-service\"" (include "ocr.apiMatch" .) -}}
{{- $text = $text | replace "namespace=\"ocr\"" (printf "namespace=%q" .Release.Namespace) -}}
{{- $text = $text | replace "https://github.com/example/ocr-service/blob/main/docs/operations.md#" (printf "%s#" (trimSuffix "/" .Values.monitoring.runbookBaseUrl)) -}}
{{- $rules := $text | fromYaml -}}
{{- if or (ne .Values.backend "triton") (and (eq (include "ocr.tritonExternal" .) "true") (not .Values.monitoring.tritonJob)) -}}
{{- $groups := list -}}
{{- range $rules.groups }}{{ if ne .name "triton" }}{{ $groups = append $groups . }}{{ end }}{{ end -}}
{{- $_ := set $rules "groups" $groups -}}
{{- end -}}
{{- toYaml $rules -}}
{{- end }}

{{- define "ocr.secretName" -}}
{{- default (include "ocr.suffixedName" (dict "root" . "suffix" "tokens")) .Values.auth.existingSecret }}
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
{{- printf "sum({__name__=~\"ocr_jobs_in_flight|ocr_jobs_waiting\", namespace=%q, %s})" .Release.Namespace (include "ocr.apiMatch" .) -}}
{{- end }}

{{/* The prometheus-adapter rule for the HPA's jobs-per-pod metric (files/prometheus-adapter-rules.yml). */}}
{{- define "ocr.adapterRules" -}}
{{- .Files.Get "files/prometheus-adapter-rules.yml" | replace "ocr_jobs_per_pod" .Values.autoscaling.prometheusAdapter.metricName -}}
{{- end }}

{{/* "true" when Triton runs as a sidecar of the API pods (backend triton, triton.colocated.enabled);
the render fails on values that cannot go with it. */}}
{{/* "true" when the API calls an existing Triton (triton.external.url): the chart then renders no
Triton Deployment, Service, PDB, NetworkPolicy or scrape target of its own. */}}
{{- define "ocr.tritonExternal" -}}
{{- if and (eq .Values.backend "triton") .Values.triton.external.url -}}
true
{{- end -}}
{{- end }}

{{/* "true" when the chart runs Triton as a Deployment of its own. */}}
{{- define "ocr.tritonManaged" -}}
{{- if .Values.triton.standby -}}
{{- if ne .Values.backend "embedded" }}{{ fail "triton.standby runs a Triton beside the embedded backend, for a switch to backend: triton; with backend: triton it is that Triton already" }}{{ end -}}
{{- if or .Values.triton.colocated.enabled .Values.triton.external.url }}{{ fail "triton.standby renders a Triton Deployment of this release: not with triton.colocated.enabled or triton.external.url" }}{{ end -}}
true
{{- else if and (eq .Values.backend "triton") (ne (include "ocr.tritonColocated" .) "true") (ne (include "ocr.tritonExternal" .) "true") -}}
true
{{- end -}}
{{- end }}

{{- define "ocr.tritonColocated" -}}
{{- if .Values.triton.colocated.enabled -}}
{{- if ne .Values.backend "triton" }}{{ fail "triton.colocated.enabled needs backend: triton" }}{{ end -}}
{{- if .Values.triton.external.url }}{{ fail "triton.external.url and triton.colocated.enabled exclude each other: the sidecar is a Triton of the pod's own" }}{{ end -}}
{{- if .Values.triton.autoscaling.enabled }}{{ fail "triton.autoscaling scales the Triton Deployment, which triton.colocated.enabled replaces by a sidecar of each API pod: scale the API pods (autoscaling) instead" }}{{ end -}}
{{- $need := mul (int .Values.triton.colocated.shmRegions) (int (include "ocr.tritonShmRegionMiB" .)) -}}
{{- $have := int (include "ocr.memoryMiB" .Values.triton.shmSize) -}}
{{- if lt $have $need }}{{ fail (printf "triton.shmSize (%s = %d MiB) cannot hold the service's shared-memory regions (%d x %d MiB = %d MiB): raise triton.shmSize or lower triton.colocated.shmRegions / shmRegionMiB" (toString .Values.triton.shmSize) $have (int .Values.triton.colocated.shmRegions) (int (include "ocr.tritonShmRegionMiB" .)) $need) }}{{ end -}}
true
{{- end -}}
{{- end }}

{{/* MiB of one shared-memory region: triton.colocated.shmRegionMiB, or what the service takes for 0
(preprocess_service/backends/triton_shm.py: 7 bytes per pixel at the detection limit + 1 MiB, at least 4). */}}
{{- define "ocr.tritonShmRegionMiB" -}}
{{- $mib := int .Values.triton.colocated.shmRegionMiB -}}
{{- if not $mib -}}
{{- $side := int .Values.config.detLimitSideLen -}}
{{- $mib = div (add (mul 7 $side $side) 1048576 1048575) 1048576 | int -}}
{{- if lt $mib 4 }}{{ $mib = 4 }}{{ end -}}
{{- end -}}
{{- $mib -}}
{{- end }}

{{/* The Service that gives a colocated Triton's metrics their `job` label (a ServiceMonitor scrapes it). */}}
{{- define "ocr.tritonAdminSecret" -}}
{{- .Values.triton.adminSecret | default (include "ocr.suffixedName" (dict "root" . "suffix" "triton-admin")) }}
{{- end }}

{{/* An exec probe asking Triton on loopback: HTTP/1.0 GET of .path on .port, success on a 200. */}}
{{- define "ocr.tritonLoopbackProbe" -}}
{{- $script := printf "exec 3<>/dev/tcp/127.0.0.1/%d && printf 'GET %s HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == *' 200 '* ]]" (int .port) .path -}}
{{- printf "[\"bash\", \"-c\", %q]" $script -}}
{{- end }}

{{- define "ocr.tritonHeadlessName" -}}
{{- include "ocr.suffixedName" (dict "root" . "suffix" "triton-headless") }}
{{- end }}

{{- define "ocr.tritonMetricsName" -}}
{{- include "ocr.suffixedName" (dict "root" . "suffix" "triton-metrics") }}
{{- end }}

{{/* The model set in use: the INT8 sets (the default among them) are for CPUs, so where the models run
on GPUs (gpu.enabled, or backend triton with triton.gpus > 0) they become the float set they were
quantised from. */}}
{{- define "ocr.modelSet" -}}
{{- $onGpu := or (and (eq .Values.backend "embedded") .Values.gpu.enabled) (and (eq .Values.backend "triton") (gt (int .Values.triton.gpus) 0)) -}}
{{- if and $onGpu (has .Values.config.modelSet (list "ppocrv6_small_int8" "ppocrv6_small_int8rec")) -}}ppocrv6_small{{- else -}}{{ .Values.config.modelSet }}{{- end -}}
{{- end }}

{{/* The models each model set loads on Triton. */}}
{{/* The set Triton serves for config.modelSet: an INT8 set becomes the float one when Triton has GPUs. */}}
{{- define "ocr.tritonModelSet" -}}
{{- if and (gt (int .Values.triton.gpus) 0) (has .Values.config.modelSet (list "ppocrv6_small_int8" "ppocrv6_small_int8rec")) -}}ppocrv6_small{{- else -}}{{ .Values.config.modelSet }}{{- end -}}
{{- end }}

{{/* The models Triton serves: the model set's, then those of triton.extraModelSets (a set switch in two
upgrades without a request failing: docs/deployment.md), each folder once, in a stable order. */}}
{{- define "ocr.tritonModels" -}}
{{- $models := dict "ppocrv6_small_int8" (list "ppocrv6_small_det_int8" "ppocrv6_small_rec_int8" "ppocr_textline_cls") "ppocrv6_small_int8rec" (list "ppocrv6_small_det" "ppocrv6_small_rec_int8" "ppocr_textline_cls") "ppocrv6_small" (list "ppocrv6_small_det" "ppocrv6_small_rec" "ppocr_textline_cls") "ppocrv6_small_fp16" (list "ppocrv6_small_det_fp16" "ppocrv6_small_rec_fp16" "ppocr_textline_cls") "ppocrv6_tiny" (list "ppocrv6_tiny_det" "ppocrv6_tiny_rec" "ppocr_textline_cls") "ppocrv5_mobile" (list "ppocrv5_mobile_det" "ppocrv5_mobile_rec" "ppocr_textline_cls") -}}
{{- $all := get $models (include "ocr.tritonModelSet" .) -}}
{{- range .Values.triton.extraModelSets -}}
{{- $set := . -}}
{{- if and (gt (int $.Values.triton.gpus) 0) (has $set (list "ppocrv6_small_int8" "ppocrv6_small_int8rec")) }}{{ $set = "ppocrv6_small" }}{{ end -}}
{{- $all = concat $all (get $models $set) -}}
{{- end -}}
{{- toYaml (ternary (uniq $all | sortAlpha) $all (gt (len .Values.triton.extraModelSets) 0)) -}}
{{- end }}

{{/* The init container that copies model_repository/ from the service image (triton.modelRepository.source copy). */}}
{{- define "ocr.tritonCopyModels" -}}
# The service image carries model_repository/ (fetched and sha256-checked at build time); only the
# model set's folders are copied, and Triton loads what it finds (--model-control-mode=none).
- name: copy-models
  image: {{ include "ocr.modelsImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  command: ["python", "-c", "import shutil, sys; [shutil.copytree('/app/model_repository/' + m, '/models/' + m, dirs_exist_ok=True) for m in sys.argv[1:]]"]
  args:
    {{- include "ocr.tritonModels" . | nindent 4 }}
  securityContext:
    {{- toYaml .Values.triton.securityContext | nindent 4 }}
  resources:
    requests: {cpu: 100m, memory: 128Mi}
    limits: {memory: 512Mi}
  volumeMounts:
    - name: models
      mountPath: /models
{{- end }}

{{/* The Triton container: (dict "root" $ "colocated" bool). As a sidecar its ports are named triton-*
(the API has `http`), its /tmp is the volume triton-tmp, and it outlives the API's drain. */}}
{{- define "ocr.tritonContainer" -}}
{{- $root := .root -}}
{{- $t := $root.Values.triton -}}
{{- $src := $t.modelRepository -}}
{{- $p := ternary "triton-" "" .colocated -}}
- name: triton
  image: {{ include "ocr.tritonImage" $root }}
  imagePullPolicy: {{ $t.image.pullPolicy }}
  args:
    - tritonserver
    - --model-repository={{ if eq $src.source "url" }}{{ required "triton.modelRepository.url is required with triton.modelRepository.source=url (s3://, gs:// or as://)" $src.url }}{{ else }}/models{{ end }}
    - --http-port={{ $t.ports.http }}
    {{- if .colocated }}
    # only the pod's own containers reach the HTTP API (inference, shared memory); the metrics port
    # stays open to the scraper
    - --http-address=127.0.0.1
    - --metrics-address=0.0.0.0
    {{- end }}
    # The APIs the service never calls answer 403 without the admin key's header (Secret
    # {{ include "ocr.tritonAdminSecret" $root }}): model load/unload/index, and logging and trace
    # settings; shared memory too, except for the sidecar, whose API registers its regions.
    - --http-restricted-api={{ ternary "model-repository,logging,trace" "model-repository,shared-memory,logging,trace" .colocated }}:triton-admin-key=$(TRITON_ADMIN_KEY)
    {{- if $t.grpc.enabled }}
    - --grpc-port={{ $t.ports.grpc }}
    {{- else }}
    - --allow-grpc=false
    {{- end }}
    - --metrics-port={{ $t.ports.metrics }}
    {{- if eq $src.source "copy" }}
    # the repository holds exactly the model set's folders (copy-models): every one is loaded at
    # start and nothing can load, unload or replace a model afterwards (no model-control API)
    - --model-control-mode=none
    {{- else }}
    # a repository of someone else's (pvc, url) may hold more: load only the set's models
    - --model-control-mode=explicit
    {{- range (include "ocr.tritonModels" $root | fromYamlArray) }}
    - --load-model={{ . }}
    {{- end }}
    {{- end }}
    - --strict-readiness=true
    - --exit-timeout-secs={{ $t.exitTimeoutSeconds }}
    {{- if gt (int $t.gpus) 0 }}
    # configs/gpu.pbtxt of each model: KIND_GPU (a CUDA failure fails the load, never a silent CPU
    # fallback), batch sizes and warm-up shapes from the service's shape buckets
    - --model-config-name=gpu
    {{- end }}
    {{- range $t.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  {{- if or $src.credentialsSecret $t.extraEnvFrom }}
  envFrom:
    {{- with $src.credentialsSecret }}
    - secretRef:
        name: {{ . }}
    {{- end }}
    {{- with $t.extraEnvFrom }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
  env:
    - name: TRITON_ADMIN_KEY
      valueFrom:
        secretKeyRef: {name: {{ include "ocr.tritonAdminSecret" $root }}, key: admin-key}
    {{- with $t.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - {name: {{ $p }}http, containerPort: {{ $t.ports.http }}, protocol: TCP}
    {{- if $t.grpc.enabled }}
    - {name: {{ $p }}grpc, containerPort: {{ $t.ports.grpc }}, protocol: TCP}
    {{- end }}
    - {name: {{ $p }}metrics, containerPort: {{ $t.ports.metrics }}, protocol: TCP}
  {{- if .colocated }}
  # Bound to 127.0.0.1, the sidecar is out of the kubelet's reach (it probes the pod IP): the
  # probes run in the container and ask Triton on loopback (bash, no curl needed).
  startupProbe:
    exec: {command: {{ include "ocr.tritonLoopbackProbe" (dict "port" $t.ports.http "path" "/v2/health/ready") }}}
    periodSeconds: 10
    failureThreshold: 60
  readinessProbe:
    exec: {command: {{ include "ocr.tritonLoopbackProbe" (dict "port" $t.ports.http "path" "/v2/health/ready") }}}
    periodSeconds: 5
    timeoutSeconds: 3
    failureThreshold: 3
  livenessProbe:
    exec: {command: {{ include "ocr.tritonLoopbackProbe" (dict "port" $t.ports.http "path" "/v2/health/live") }}}
    periodSeconds: 10
    timeoutSeconds: 3
    failureThreshold: 3
  {{- else }}
  startupProbe:
    httpGet: {path: /v2/health/ready, port: http}
    periodSeconds: 10
    failureThreshold: 60
  readinessProbe:
    httpGet: {path: /v2/health/ready, port: http}
    periodSeconds: 5
    failureThreshold: 3
  livenessProbe:
    httpGet: {path: /v2/health/live, port: http}
    periodSeconds: 10
    failureThreshold: 3
  {{- end }}
  {{- if .colocated }}
  # Both containers get SIGTERM at once: Triton waits until the API has drained its requests
  # (the drain delay + OCR_SHUTDOWN_GRACE_S), so that they still reach it.
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ sub (include "ocr.terminationGrace" $root | int) 5 }}"]
  {{- else }}
  # A terminating Triton keeps serving while the Service's endpoints drop it, then stops taking
  # requests and gives those in progress --exit-timeout-secs (a Triton that unloads its models
  # answers "unknown model": it must not get new requests by then).
  lifecycle:
    preStop:
      exec:
        command: ["sleep", "{{ $t.drainSeconds }}"]
  {{- end }}
  securityContext:
    {{- toYaml $t.securityContext | nindent 4 }}
  resources:
    requests:
      {{- toYaml $t.resources.requests | nindent 6 }}
      {{- if gt (int $t.gpus) 0 }}
      {{ $t.gpuResourceName }}: {{ $t.gpus }}
      {{- end }}
    limits:
      {{- toYaml $t.resources.limits | nindent 6 }}
      {{- if gt (int $t.gpus) 0 }}
      {{ $t.gpuResourceName }}: {{ $t.gpus }}
      {{- end }}
  volumeMounts:
    - {name: shm, mountPath: /dev/shm}
    - {name: {{ $p }}tmp, mountPath: /tmp}
    {{- if ne $src.source "url" }}
    - name: models
      mountPath: /models
      readOnly: {{ eq $src.source "pvc" }}
    {{- end }}
    {{- with $t.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* Triton's volumes: (dict "root" $ "colocated" bool). */}}
{{- define "ocr.tritonVolumes" -}}
{{- $t := .root.Values.triton -}}
{{- $src := $t.modelRepository -}}
- name: shm
  emptyDir: {medium: Memory, sizeLimit: {{ $t.shmSize }}}
- name: {{ ternary "triton-tmp" "tmp" .colocated }}
  emptyDir: {sizeLimit: 1Gi}
{{- if eq $src.source "copy" }}
- name: models
  emptyDir: {sizeLimit: 2Gi}
{{- else if eq $src.source "pvc" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ required "triton.modelRepository.claimName is required with source: pvc" $src.claimName }}
    readOnly: true
{{- end }}
{{- with $t.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
