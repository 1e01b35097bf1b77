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
{{- if eq $src "objectStore" -}}
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
