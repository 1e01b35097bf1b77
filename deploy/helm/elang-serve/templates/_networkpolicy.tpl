{{/* One pool's networkpolicy (rendered per pool by pools.yaml; "." is the pool's context). */}}
{{- define "elang.pool.networkpolicy" -}}
{{- if .Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "elang.poolFullname" . }}
  labels:
    {{- include "elang.poolLabels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "elang.poolSelectorLabels" . | nindent 6 }}
  policyTypes: [Ingress]
  ingress:
    # The serving ports, from the clients (any pod of the namespace when none are named).
    - ports:
        - port: http
        - port: grpc
      from:
        {{- if eq .Pool "super" }}
        # The Super pool answers the router pool only (its routers' remote calls).
        - podSelector:
            matchLabels:
              {{- include "elang.selectorLabels" . | nindent 14 }}
              app.kubernetes.io/component: router-pool
        {{- else if .Values.networkPolicy.clients }}
        {{- toYaml .Values.networkPolicy.clients | nindent 8 }}
        {{- else }}
        - podSelector: {}
        {{- end }}
    # The metrics port, from the monitoring stack (any pod of the namespace when none is named).
    - ports:
        - port: metrics
      from:
        {{- if .Values.networkPolicy.monitoring }}
        {{- toYaml .Values.networkPolicy.monitoring | nindent 8 }}
        {{- else }}
        - podSelector: {}
        {{- end }}
{{- end }}
{{- end -}}
