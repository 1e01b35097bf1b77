{{- define "elang.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "elang.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "elang.labels" -}}
app.kubernetes.io/name: {{ include "elang.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "elang.selectorLabels" -}}
app.kubernetes.io/name: {{ include "elang.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Where the repository of the selected runtime is as shipped. */}}
{{- define "elang.sourcePath" -}}
{{- $src := .Values.modelRepository.source -}}
{{- if and (eq $src "objectStore") (not (include "elang.fetchesBucket" .)) -}}
{{- required "modelRepository.objectStore.uri is required when source is objectStore" .Values.modelRepository.objectStore.uri | trimSuffix "/" -}}/{{ .Values.runtime }}
{{- else if eq $src "image" -}}
{{- .Values.modelRepository.image.path | trimSuffix "/" -}}
{{- else -}}
{{- .Values.modelRepository.mountPath | trimSuffix "/" -}}/{{ .Values.runtime }}
{{- end -}}
{{- end -}}

{{/* The serving knobs given (non-null), as `python3 -m elang.ops.prepare` options. */}}
{{- define "elang.knobArgs" -}}
{{- $opts := dict "maxQueueSize" "--max-queue-size" "queueTimeoutSeconds" "--queue-timeout-s" "stageTimeoutSeconds" "--stage-timeout-s" "stageInflight" "--stage-inflight" "stageQueueRows" "--stage-queue-rows" "routerInstances" "--router-instances" "maxQueueDelayMicroseconds" "--max-queue-delay-us" "queueScope" "--queue-scope" -}}
{{- range $key := keys $opts | sortAlpha -}}
{{- $v := index $.Values.serving $key -}}
{{- if not (kindIs "invalid" $v) }}
- {{ index $opts $key }}={{ $v }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when an init container copies the repository to a writable volume (engines, knobs). */}}
{{- define "elang.prepareArgs" -}}
{{- $mode := toString .Values.prepare.enabled -}}
{{- if eq $mode "true" -}}true
{{- else if eq $mode "auto" -}}
{{- if or (eq .Values.runtime "tensorrt") (include "elang.knobArgs" . | trim) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where tritonserver finds the repository. */}}
{{- define "elang.repositoryPath" -}}
{{- if include "elang.prepareArgs" . -}}
/prepared/repository
{{- else -}}
{{- include "elang.sourcePath" . -}}
{{- end -}}
{{- end -}}

{{/* Container resources, with the GPU added when gpu.enabled. */}}
{{- define "elang.resources" -}}
{{- $res := deepCopy .Values.resources -}}
{{- if .Values.gpu.enabled -}}
{{- $limits := default dict $res.limits -}}
{{- $_ := set $limits "nvidia.com/gpu" .Values.gpu.count -}}
{{- $_ := set $res "limits" $limits -}}
{{- end -}}
{{- toYaml $res -}}
{{- end -}}

{{/* The Secret holding the control API's secret, and its key. */}}
{{- define "elang.controlSecretName" -}}
{{- .Values.server.controlSecret.existingSecret | default (printf "%s-control" (include "elang.fullname" .)) -}}
{{- end -}}

{{/* Whether any API is restricted to the control secret. */}}
{{- define "elang.restricted" -}}
{{- if .Values.server.restrictedApis -}}true{{- end -}}
{{- end -}}

{{/* "true" when an init container copies the bucket (source objectStore, objectStore.fetch): the
credentials then reach that container only, never Triton or its Python stubs. */}}
{{- define "elang.fetchesBucket" -}}
{{- if and (eq .Values.modelRepository.source "objectStore") .Values.modelRepository.objectStore.fetch -}}true{{- end -}}
{{- end -}}

{{/* The bucket's scheme: s3, gs or as. */}}
{{- define "elang.bucketScheme" -}}
{{- regexFind "^(s3|gs|as)" .Values.modelRepository.objectStore.uri -}}
{{- end -}}

{{/* The fetch container's command: the runtime's folder of the bucket into mountPath/runtime. */}}
{{- define "elang.fetchCommand" -}}
{{- $store := .Values.modelRepository.objectStore -}}
{{- $src := printf "%s/%s" ($store.uri | trimSuffix "/") .Values.runtime -}}
{{- $dest := printf "%s/%s" (.Values.modelRepository.mountPath | trimSuffix "/") .Values.runtime -}}
{{- $scheme := include "elang.bucketScheme" . -}}
{{- if $store.fetchCommand -}}
{{- toYaml $store.fetchCommand -}}
{{- else if eq $scheme "s3" -}}
{{- toYaml (list "aws" "s3" "sync" "--only-show-errors" $src $dest) -}}
{{- else if eq $scheme "gs" -}}
{{- toYaml (list "sh" "-c" (printf "mkdir -p %s && gcloud storage rsync --recursive %s %s" $dest $src $dest)) -}}
{{- else -}}
{{- /* as://account/container/prefix: az keeps the blob path under the destination */ -}}
{{- $parts := splitList "/" (trimPrefix "as://" ($store.uri | trimSuffix "/")) -}}
{{- $container := index $parts 1 -}}
{{- $prefix := join "/" (append (rest (rest $parts)) .Values.runtime) -}}
{{- $stage := printf "%s/.download" (.Values.modelRepository.mountPath | trimSuffix "/") -}}
{{- toYaml (list "sh" "-c" (printf "az storage blob download-batch --only-show-errors --source %s --pattern '%s/*' --destination %s && mv %s/%s %s && rm -rf %s" $container $prefix $stage $stage $prefix $dest $stage)) -}}
{{- end -}}
{{- end -}}

{{/* Pools: "." is a pool's context, (dict "Values" "Release" "Chart" "Pool"), made by pools.yaml:
Pool "" is the router pool (router, Swift; in the single-pod layout every stage), "super" the
Super pool of the disaggregated layout (superPool.enabled). */}}
{{- define "elang.poolFullname" -}}
{{- if .Pool -}}
{{- printf "%s-%s" (include "elang.fullname" . | trunc 56 | trimSuffix "-") .Pool -}}
{{- else -}}
{{- include "elang.fullname" . -}}
{{- end -}}
{{- end -}}

{{- define "elang.poolSelectorLabels" -}}
{{ include "elang.selectorLabels" . }}
{{- if .Values.superPool.enabled }}
app.kubernetes.io/component: {{ .Pool | default "router" }}-pool
{{- end }}
{{- end -}}

{{- define "elang.poolLabels" -}}
{{ include "elang.labels" . }}
{{- if .Values.superPool.enabled }}
app.kubernetes.io/component: {{ .Pool | default "router" }}-pool
{{- end }}
{{- end -}}

{{/* The router pool's remote Super: the Super pool's Service, on its gRPC port. */}}
{{- define "elang.remoteStages" -}}
{{- $sp := .Values.superPool -}}
{{- range $i, $stage := $sp.stages -}}
{{- if $i }},{{ end -}}
{{ $stage }}=grpc://{{ include "elang.fullname" $ }}-super:{{ $.Values.ports.grpc }}/{{ $stage }}
{{- end -}}
{{- end -}}
