{{/* One pool's hpa (rendered per pool by pools.yaml; "." is the pool's context). */}}
{{- define "elang.pool.hpa" -}}
{{- if .Values.autoscaling.enabled }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "elang.poolFullname" . }}
  labels:
    {{- include "elang.poolLabels" . | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "elang.poolFullname" . }}
  minReplicas: {{ .Values.autoscaling.minReplicas }}
  maxReplicas: {{ .Values.autoscaling.maxReplicas }}
  metrics:
    - type: Pods
      pods:
        metric:
          name: {{ .Values.autoscaling.metricName }}
        target:
          type: AverageValue
          averageValue: {{ .Values.autoscaling.targetAverageQueueMicroseconds | quote }}
{{- end }}
{{- end -}}
