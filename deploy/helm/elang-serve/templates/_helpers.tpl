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

{{/* Where tritonserver finds the repository for the selected runtime. */}}
{{- define "elang.repositoryPath" -}}
{{- if eq .Values.modelRepository.source "objectStore" -}}
{{- required "modelRepository.objectStore.uri is required when source is objectStore" .Values.modelRepository.objectStore.uri | trimSuffix "/" -}}/{{ .Values.runtime }}
{{- else -}}
{{- .Values.modelRepository.mountPath | trimSuffix "/" -}}/{{ .Values.runtime }}
{{- end -}}
{{- end -}}
