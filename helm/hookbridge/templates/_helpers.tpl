{{/* Chart name. */}}
{{- define "hookbridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release name when it already contains the chart name. */}}
{{- define "hookbridge.fullname" -}}
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

{{- define "hookbridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hookbridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookbridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hookbridge.labels" -}}
helm.sh/chart: {{ include "hookbridge.chart" . }}
{{ include "hookbridge.selectorLabels" . }}
app.kubernetes.io/version: {{ (.Values.image.tag | default .Chart.AppVersion) | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metadata.annotations of an object: commonAnnotations merged with the object's own, which win.
Renders nothing when both are empty. Argument: dict "context" $ "annotations" <map or nil>.
Use as {{- include "hookbridge.annotations" (dict ...) | nindent 2 }}.
*/}}
{{- define "hookbridge.annotations" -}}
{{- $all := merge (dict) (.annotations | default dict) (.context.Values.commonAnnotations | default dict) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
PromQL label matchers that pick this release's gateway series: the job and namespace labels
a ServiceMonitor scrape gives them (job = the Service's name), or prometheusRule.selector.
*/}}
{{- define "hookbridge.metricSelector" -}}
{{- if .Values.prometheusRule.selector }}
{{- .Values.prometheusRule.selector }}
{{- else }}
{{- printf "job=%q,namespace=%q" (include "hookbridge.fullname" .) .Release.Namespace }}
{{- end }}
{{- end }}

{{/* True (non-empty) when something other than replicaCount owns the Deployment's replicas. */}}
{{- define "hookbridge.autoscaled" -}}
{{- if or .Values.autoscaling.enabled .Values.keda.enabled }}true{{ end }}
{{- end }}

{{- define "hookbridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hookbridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hookbridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Name of the Secret holding the API tokens. */}}
{{- define "hookbridge.tokensSecretName" -}}
{{- if .Values.sendbird.existingSecret }}
{{- .Values.sendbird.existingSecret }}
{{- else }}
{{- printf "%s-api-tokens" (include "hookbridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart creates the tokens Secret. */}}
{{- define "hookbridge.createTokensSecret" -}}
{{- if and (not .Values.sendbird.existingSecret) .Values.sendbird.apps }}true{{ end }}
{{- end }}

{{/* Name of the Secret holding the sources' secrets (sources[].secrets). */}}
{{- define "hookbridge.sourcesSecretName" -}}
{{- if .Values.sourcesSecret.existingSecret }}
{{- .Values.sourcesSecret.existingSecret }}
{{- else }}
{{- printf "%s-source-secrets" (include "hookbridge.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* True (non-empty) when the chart creates the sources Secret. */}}
{{- define "hookbridge.createSourcesSecret" -}}
{{- if and (not .Values.sourcesSecret.existingSecret) .Values.sources }}true{{ end }}
{{- end }}

{{/* Key of a source's secrets in the sources Secret (argument: one sources[] entry):
secretKey, else <provider>-<id>. It is mounted at <secrets dir>/sources/<key>. */}}
{{- define "hookbridge.sourceSecretKey" -}}
{{- .secretKey | default (printf "%s-%s" .provider .id) }}
{{- end }}

{{/* Where secret files are mounted. */}}
{{- define "hookbridge.secretsDir" -}}/var/run/secrets/hookbridge{{- end }}

{{/* Whole seconds of a duration such as 500ms, 15s or 2m (rounded up). */}}
{{- define "hookbridge.durationSeconds" -}}
{{- $d := toString . }}
{{- if not (regexMatch "^[0-9]+(ms|s|m)$" $d) }}
{{- fail (printf "duration %q: use a whole number followed by ms, s or m" $d) }}
{{- end }}
{{- $n := regexFind "^[0-9]+" $d | int }}
{{- if hasSuffix "ms" $d }}{{ div (add $n 999) 1000 }}
{{- else if hasSuffix "m" $d }}{{ mul $n 60 }}
{{- else }}{{ $n }}
{{- end }}
{{- end }}

{{/* Milliseconds of a duration such as 500ms, 15s or 2m. */}}
{{- define "hookbridge.durationMillis" -}}
{{- $d := toString . }}
{{- $n := regexFind "^[0-9]+" $d | int }}
{{- if hasSuffix "ms" $d }}{{ $n }}
{{- else if hasSuffix "m" $d }}{{ mul $n 60000 }}
{{- else }}{{ mul $n 1000 }}
{{- end }}
{{- end }}

{{/*
Checks across values that the schema cannot express; fails the render with a clear message.
*/}}
{{- define "hookbridge.validate" -}}
{{- $v := .Values }}
{{- $shutdown := include "hookbridge.durationSeconds" $v.config.shutdownTimeout | int }}
{{- $preStop := int $v.lifecycle.preStopSleepSeconds }}
{{- if le (int $v.terminationGracePeriodSeconds) (add $shutdown $preStop) }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must be greater than lifecycle.preStopSleepSeconds (%d) + config.shutdownTimeout (%ds), or Kubernetes kills the pod while it drains" (int $v.terminationGracePeriodSeconds) $preStop $shutdown) }}
{{- end }}
{{- $publish := include "hookbridge.durationMillis" $v.config.publishTimeout | int }}
{{- if ge $publish 5000 }}
{{- fail (printf "config.publishTimeout (%s) must stay below Sendbird's 5 s webhook timeout" $v.config.publishTimeout) }}
{{- end }}
{{- if lt (include "hookbridge.durationMillis" $v.config.shutdownTimeout | int) $publish }}
{{- fail (printf "config.shutdownTimeout (%s) must be at least config.publishTimeout (%s), or in-flight requests cannot finish" $v.config.shutdownTimeout $v.config.publishTimeout) }}
{{- end }}
{{- /* one largest body and the record built from it (at most 4 x body + 64 KiB) must fit */}}
{{- $needBuffer := add (mul (int64 $v.config.maxBodyBytes) 5) 65536 }}
{{- if lt (int64 $v.config.maxBufferedBytes) $needBuffer }}
{{- fail (printf "config.maxBufferedBytes (%d) must be at least 5 x config.maxBodyBytes + 65536 (%d): it must hold one largest body and the record built from it" (int64 $v.config.maxBufferedBytes) $needBuffer) }}
{{- end }}
{{- /* set by hookbridge for its delivery guarantee; the gateway refuses them too */}}
{{- $reserved := list "bootstrap.servers" "metadata.broker.list" "enable.idempotence" "acks" "request.required.acks" "partitioner" "max.in.flight.requests.per.connection" "max.in.flight" "message.max.bytes" "enable.gapless.guarantee" "transactional.id" }}
{{- range $k, $_ := $v.kafka.properties }}
{{- if has $k $reserved }}
{{- fail (printf "kafka.properties.%s is set by hookbridge for its delivery guarantee (acks=all, idempotence, murmur2_random partitioner) and may not be overridden; brokers go in kafka.brokers" $k) }}
{{- end }}
{{- end }}
{{- $secretNames := list "sasl.password" "ssl.key.password" "ssl.keystore.password" "ssl.key.pem" "ssl_key" "ssl.truststore.password" "sasl.oauthbearer.client.secret" "sasl.oauthbearer.config" }}
{{- range $k, $_ := $v.kafka.properties }}
{{- if has $k $secretNames }}
{{- fail (printf "kafka.properties.%s is a secret: use kafka.secretProperties (a Secret reference) instead, so it never lands in the ConfigMap" $k) }}
{{- end }}
{{- end }}
{{- $seen := dict }}
{{- range concat $v.kafka.secretProperties $v.kafka.secretFiles }}
{{- if or (hasKey $v.kafka.properties .property) (hasKey $seen .property) }}
{{- fail (printf "kafka property %s is set more than once (kafka.properties, kafka.secretProperties, kafka.secretFiles)" .property) }}
{{- end }}
{{- $_ := set $seen .property true }}
{{- end }}
{{- $apps := dict }}
{{- range $i, $app := $v.sendbird.apps }}
{{- if hasKey $apps $app.appId }}
{{- fail (printf "sendbird.apps: app id %s is listed twice" $app.appId) }}
{{- end }}
{{- $_ := set $apps $app.appId true }}
{{- if $v.sendbird.existingSecret }}
{{- if $app.apiTokens }}
{{- fail (printf "sendbird.apps[%d].apiTokens is set but sendbird.existingSecret is used: keep the tokens in the Secret only" $i) }}
{{- end }}
{{- else if not $app.apiTokens }}
{{- fail (printf "sendbird.apps[%d] (%s) has no apiTokens: set sendbird.existingSecret (a Secret with one key per app id) or the app's apiTokens" $i $app.appId) }}
{{- end }}
{{- end }}
{{- /* the gateway matches ids in any case and counts sendbird.apps as sendbird sources */}}
{{- $sources := dict }}
{{- $sourceKeys := dict }}
{{- range $app := $v.sendbird.apps }}
{{- $_ := set $sources (printf "sendbird/%s" (lower $app.appId)) -1 }}
{{- end }}
{{- range $i, $src := $v.sources }}
{{- $name := printf "%s/%s" $src.provider $src.id }}
{{- $seenAt := get $sources (lower $name) }}
{{- if eq (toString $seenAt) "-1" }}
{{- fail (printf "sources[%d]: sendbird source %s is also in sendbird.apps (ids match in any case); both would answer /webhooks/sendbird/%s: keep one" $i $src.id $src.id) }}
{{- else if hasKey $sources (lower $name) }}
{{- fail (printf "sources: provider %s with id %s is listed twice (sources[%d] and sources[%d]; ids match in any case); each gets the route /webhooks/%s" $src.provider $src.id $seenAt $i $name) }}
{{- end }}
{{- $_ := set $sources (lower $name) $i }}
{{- $key := include "hookbridge.sourceSecretKey" $src }}
{{- if $v.sourcesSecret.existingSecret }}
{{- if $src.secrets }}
{{- fail (printf "sources[%d].secrets is set but sourcesSecret.existingSecret is used: keep the secrets in the Secret only (key %s)" $i $key) }}
{{- end }}
{{- else }}
{{- if not $src.secrets }}
{{- fail (printf "sources[%d] (%s) has no secrets: set sourcesSecret.existingSecret (a Secret with the key %s) or the source's secrets" $i $name $key) }}
{{- end }}
{{- if hasKey $sourceKeys $key }}
{{- fail (printf "sources[%d] (%s): secret key %s is used by sources[%d] too; with chart-created secrets each source needs its own key (secretKey)" $i $name $key (get $sourceKeys $key)) }}
{{- end }}
{{- end }}
{{- $_ := set $sourceKeys $key $i }}
{{- end }}
{{- if and $v.podDisruptionBudget.enabled (not (kindIs "invalid" $v.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" $v.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set minAvailable or maxUnavailable, not both (set the other to null)" }}
{{- end }}
{{- if and $v.networkPolicy.enabled (not $v.networkPolicy.webhookFrom) }}
{{- fail "networkPolicy.webhookFrom must list at least one source (e.g. the ingress controller's namespace, or an ipBlock)" }}
{{- end }}
{{- /* podLabels go on the pod template next to the selector labels; the same key twice is an
       invalid object, and a changed selector label would orphan the pods */}}
{{- range $k, $_ := $v.podLabels }}
{{- if has $k (list "app.kubernetes.io/name" "app.kubernetes.io/instance" "app.kubernetes.io/version" "app.kubernetes.io/managed-by" "app.kubernetes.io/component" "helm.sh/chart") }}
{{- fail (printf "podLabels.%s is set by the chart (selector and standard labels); use another key" $k) }}
{{- end }}
{{- if hasKey $v.commonLabels $k }}
{{- fail (printf "podLabels.%s is in commonLabels too, which the pods already carry; set it in one place" $k) }}
{{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled $v.keda.enabled }}
{{- fail "autoscaling.enabled and keda.enabled are both true: KEDA makes its own HorizontalPodAutoscaler for the Deployment, and two autoscalers would fight over its replicas; keep one (keda.enabled scales on in-flight requests, autoscaling.enabled on CPU)" }}
{{- end }}
{{- if $v.keda.enabled }}
{{- if not $v.keda.serverAddress }}
{{- fail "keda.serverAddress is empty: KEDA's Prometheus scaler needs the address of the Prometheus that scrapes the gateway (e.g. http://prometheus-operated.monitoring.svc:9090)" }}
{{- end }}
{{- if gt (int $v.keda.minReplicaCount) (int $v.keda.maxReplicaCount) }}
{{- fail (printf "keda.minReplicaCount (%d) is greater than keda.maxReplicaCount (%d)" (int $v.keda.minReplicaCount) (int $v.keda.maxReplicaCount)) }}
{{- end }}
{{- if ge (float64 $v.keda.threshold) (float64 $v.config.maxInFlight) }}
{{- fail (printf "keda.threshold (%v in-flight requests per pod) must be below config.maxInFlight (%d): a pod sheds with 503 at maxInFlight, so the average would never reach the target" $v.keda.threshold (int $v.config.maxInFlight)) }}
{{- end }}
{{- end }}
{{- if and $v.autoscaling.enabled (gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- fail (printf "autoscaling.minReplicas (%d) is greater than autoscaling.maxReplicas (%d)" (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas)) }}
{{- end }}
{{- if and $v.httpRoute.enabled (not $v.httpRoute.parentRefs) }}
{{- fail "httpRoute.parentRefs is empty: name the Gateway (and its listener, sectionName) the HTTPRoute attaches to; a route without parents serves nothing" }}
{{- end }}
{{- if $v.prometheusRule.enabled }}
{{- $pl := $v.prometheusRule.alerts.publishLatency }}
{{- if and $pl.enabled (kindIs "invalid" $pl.thresholdSeconds) }}
{{- if or (le (float64 $pl.thresholdRatio) 0.0) (gt (float64 $pl.thresholdRatio) 1.0) }}
{{- fail (printf "prometheusRule.alerts.publishLatency.thresholdRatio (%v) must be above 0 and at most 1 (a share of config.publishTimeout)" $pl.thresholdRatio) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
