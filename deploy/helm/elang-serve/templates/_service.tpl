{{/* One pool's service (rendered per pool by pools.yaml; "." is the pool's context). */}}
{{- define "elang.pool.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "elang.poolFullname" . }}
  labels:
    {{- include "elang.poolLabels" . | nindent 4 }}
  {{- with .Values.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .Values.service.type }}
  selector:
    {{- include "elang.poolSelectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.ports.http }}
      targetPort: http
    - name: grpc
      port: {{ .Values.ports.grpc }}
      targetPort: grpc
    - name: metrics
      port: {{ .Values.ports.metrics }}
      targetPort: metrics
{{- end -}}
