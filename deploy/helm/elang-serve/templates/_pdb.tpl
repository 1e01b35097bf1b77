{{/* One pool's pdb (rendered per pool by pools.yaml; "." is the pool's context). */}}
{{- define "elang.pool.pdb" -}}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $replicas := int (ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- if and (not (kindIs "invalid" $pdb.minAvailable)) (le $replicas (int $pdb.minAvailable)) }}
{{- fail (printf "podDisruptionBudget.minAvailable=%v with %d replica(s) would block every node drain; use maxUnavailable (the default) or more replicas" $pdb.minAvailable $replicas) }}
{{- end }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "elang.poolFullname" . }}
  labels:
    {{- include "elang.poolLabels" . | nindent 4 }}
spec:
  {{- if not (kindIs "invalid" $pdb.minAvailable) }}
  minAvailable: {{ $pdb.minAvailable }}
  {{- else }}
  # At most this many pods down at once: a single replica can still be drained.
  maxUnavailable: {{ $pdb.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "elang.poolSelectorLabels" . | nindent 6 }}
{{- end }}
{{- end -}}
