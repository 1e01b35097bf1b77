{{/* One pool's deployment (rendered per pool by pools.yaml; "." is the pool's context). */}}
{{- define "elang.pool.deployment" -}}
{{- $runtimes := list "python-ort" "onnxruntime" "tensorrt" -}}
{{- if not (has .Values.runtime $runtimes) -}}
{{- fail (printf "runtime must be one of %s, got %q" (join ", " $runtimes) .Values.runtime) -}}
{{- end -}}
{{- $sources := list "pvc" "objectStore" "initContainer" "image" -}}
{{- if not (has .Values.modelRepository.source $sources) -}}
{{- fail (printf "modelRepository.source must be one of %s, got %q" (join ", " $sources) .Values.modelRepository.source) -}}
{{- end -}}
{{- $store := .Values.modelRepository.objectStore -}}
{{- if eq .Values.modelRepository.source "objectStore" -}}
{{- if not (regexMatch "^(s3|gs|as)://" (required "modelRepository.objectStore.uri is required when source is objectStore" $store.uri)) -}}
{{- fail (printf "modelRepository.objectStore.uri must start with s3://, gs:// or as://, got %q" $store.uri) -}}
{{- end -}}
{{- if and (eq (include "elang.bucketScheme" .) "as") (lt (len (splitList "/" (trimPrefix "as://" ($store.uri | trimSuffix "/")))) 2) -}}
{{- fail (printf "modelRepository.objectStore.uri: an Azure URI is as://ACCOUNT/CONTAINER[/PATH], got %q" $store.uri) -}}
{{- end -}}
{{- if and (include "elang.prepareArgs" .) (not $store.fetch) -}}
{{- fail "serving knobs and TensorRT engines need a local copy of the repository: with source objectStore, Triton reads the bucket itself; set the knobs with `elang tune` before uploading (and build engines on the GPU), or keep modelRepository.objectStore.fetch true" -}}
{{- end -}}
{{- end -}}
{{- $modes := list "none" "explicit" -}}
{{- if not (has .Values.server.modelControlMode $modes) -}}
{{- fail (printf "server.modelControlMode must be none or explicit, got %q" .Values.server.modelControlMode) -}}
{{- end -}}
{{- $restrictable := list "health" "metadata" "inference" "shared-memory" "model-config" "model-repository" "statistics" "trace" "logging" -}}
{{- range .Values.server.restrictedApis -}}
{{- if not (has . $restrictable) -}}
{{- fail (printf "server.restrictedApis: Triton cannot restrict %q (it restricts %s)" . (join ", " $restrictable)) -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.server.modelControlMode "explicit") (not (has "model-repository" .Values.server.restrictedApis)) -}}
{{- fail "server.modelControlMode explicit with an open model-repository API lets any client load, unload or replace models (and run an uploaded model.py): keep model-repository in server.restrictedApis" -}}
{{- end -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "elang.poolFullname" . }}
  labels:
    {{- include "elang.poolLabels" . | nindent 4 }}
spec:
  {{- if not .Values.autoscaling.enabled }}
  replicas: {{ .Values.replicaCount }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "elang.poolSelectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "elang.poolSelectorLabels" . | nindent 8 }}
      annotations:
        prometheus.io/scrape: "true"
        prometheus.io/port: {{ .Values.ports.metrics | quote }}
    spec:
      terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
      automountServiceAccountToken: {{ .Values.automountServiceAccountToken }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.podSecurityContext | nindent 8 }}
      {{- $prepare := include "elang.prepareArgs" . }}
      {{- $fetch := include "elang.fetchesBucket" . }}
      {{- $direct := and (eq .Values.modelRepository.source "objectStore") (not $fetch) }}
      {{- $local := or (has .Values.modelRepository.source (list "pvc" "initContainer")) $fetch }}
      {{- if or $prepare $fetch (eq .Values.modelRepository.source "initContainer") }}
      initContainers:
        {{- if eq .Values.modelRepository.source "initContainer" }}
        - name: fetch-model-repository
          image: {{ .Values.modelRepository.initContainer.image }}
          command:
            {{- toYaml .Values.modelRepository.initContainer.command | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: model-repository
              mountPath: {{ .Values.modelRepository.mountPath }}
        {{- end }}
        {{- if $fetch }}
        # Copies the bucket's {{ .Values.runtime }}/ folder into an emptyDir. The credentials are given to
        # this container only: Triton and its Python stubs (which inherit Triton's environment)
        # never see them.
        {{- $scheme := include "elang.bucketScheme" . }}
        - name: fetch-model-repository
          image: {{ index $store.fetchImages $scheme }}
          command:
            {{- include "elang.fetchCommand" . | nindent 12 }}
          env:
            - name: HOME
              value: /tmp
            {{- if eq $scheme "gs" }}
            - name: CLOUDSDK_CONFIG
              value: /tmp/gcloud
            {{- if $store.gcsCredentialsSecret }}
            - name: CLOUDSDK_AUTH_CREDENTIAL_FILE_OVERRIDE
              value: /var/run/secrets/elang-gcs/{{ $store.gcsCredentialsKey }}
            - name: GOOGLE_APPLICATION_CREDENTIALS
              value: /var/run/secrets/elang-gcs/{{ $store.gcsCredentialsKey }}
            {{- end }}
            {{- end }}
            {{- if eq $scheme "as" }}
            - name: AZURE_CONFIG_DIR
              value: /tmp/azure
            {{- end }}
          {{- if $store.secretName }}
          # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION (s3://) or
          # AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY (as://).
          envFrom:
            - secretRef:
                name: {{ $store.secretName }}
          {{- end }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: model-repository
              mountPath: {{ .Values.modelRepository.mountPath }}
            {{- if $store.gcsCredentialsSecret }}
            - name: gcs-credentials
              mountPath: /var/run/secrets/elang-gcs
              readOnly: true
            {{- end }}
        {{- end }}
        {{- if $prepare }}
        # Copies the repository to a writable volume, applies the serving knobs and builds
        # TensorRT engines on this node's GPU (python3 -m elang.ops.prepare). Only args are set, so
        # NVIDIA's entrypoint (CUDA compatibility, driver checks) runs first.
        - name: prepare-model-repository
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          args:
            - python3
            - -m
            - elang.ops.prepare
            - --source={{ include "elang.sourcePath" . }}
            - --dest=/prepared/repository
            {{- if eq .Values.runtime "tensorrt" }}
            - --build-engines
            {{- end }}
            {{- include "elang.knobArgs" . | nindent 12 }}
          env:
            - name: HOME
              value: /tmp
          resources:
            {{- include "elang.resources" . | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: prepared
              mountPath: /prepared
            {{- if $local }}
            - name: model-repository
              mountPath: {{ .Values.modelRepository.mountPath }}
              readOnly: true
            {{- end }}
        {{- end }}
      {{- end }}
      containers:
        - name: tritonserver
          image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          # Only args: the image's ENTRYPOINT (NVIDIA's nvidia_entrypoint.sh) runs first.
          args:
            - tritonserver
            - --model-repository={{ include "elang.repositoryPath" . }}
            - --model-control-mode={{ .Values.server.modelControlMode }}
            {{- if eq .Values.server.modelControlMode "explicit" }}
            {{- range .Values.models }}
            - --load-model={{ . }}
            {{- end }}
            {{- end }}
            {{- if .Values.frontDoor.enabled }}
            # Behind the front door (the front-door container below owns the http port).
            - --http-address=127.0.0.1
            - --http-port={{ .Values.frontDoor.tritonHttpPort }}
            {{- else }}
            - --http-port={{ .Values.ports.http }}
            {{- end }}
            - --grpc-port={{ .Values.ports.grpc }}
            - --metrics-port={{ .Values.ports.metrics }}
            - --allow-gpu-metrics={{ .Values.gpu.enabled }}
            - --log-verbose={{ .Values.server.logVerbose }}
            - --exit-timeout-secs={{ .Values.server.exitTimeoutSeconds }}
            {{- if include "elang.restricted" . }}
            {{- $apis := join "," .Values.server.restrictedApis }}
            # The value comes from the Secret through the environment ($(VAR) is expanded by the
            # kubelet): it is in no manifest. Triton takes it only on its command line (docs/OPERATIONS.md).
            - --http-restricted-api={{ $apis }}:elang-admin-key=$(ELANG_ADMIN_KEY)
            - --grpc-restricted-protocol={{ $apis }}:elang-admin-key=$(ELANG_ADMIN_KEY)
            {{- end }}
            {{- range .Values.server.extraArgs }}
            - {{ . }}
            {{- end }}
          env:
            - name: HOME
              value: /tmp
            {{- if and .Values.superPool.enabled (not .Pool) }}
            # The routers call these stages on the Super pool (elang.runtimes.remote).
            - name: ELANG_REMOTE_STAGES
              value: {{ include "elang.remoteStages" . | quote }}
            {{- end }}
            {{- if include "elang.restricted" . }}
            # The control API's secret: Triton's restricted-API flags, and the probe's in-place reload.
            - name: ELANG_ADMIN_KEY
              valueFrom:
                secretKeyRef:
                  name: {{ include "elang.controlSecretName" . }}
                  key: {{ .Values.server.controlSecret.key }}
            {{- end }}
            {{- if and $direct $store.gcsCredentialsSecret }}
            - name: GOOGLE_APPLICATION_CREDENTIALS
              value: /var/run/secrets/elang-gcs/{{ $store.gcsCredentialsKey }}
            {{- end }}
            {{- if and $direct $store.secretName }}
          # objectStore.fetch false: Triton reads the bucket, so the credentials are in its
          # environment, and so in every Python stub's (docs/OPERATIONS.md, "The control API").
          # AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_DEFAULT_REGION (s3://) or
          # AZURE_STORAGE_ACCOUNT / AZURE_STORAGE_KEY (as://): Triton reads them from its environment.
          envFrom:
            - secretRef:
                name: {{ $store.secretName }}
            {{- end }}
          ports:
            {{- if not .Values.frontDoor.enabled }}
            - name: http
              containerPort: {{ .Values.ports.http }}
            {{- end }}
            - name: grpc
              containerPort: {{ .Values.ports.grpc }}
            - name: metrics
              containerPort: {{ .Values.ports.metrics }}
          startupProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            periodSeconds: {{ .Values.probes.startup.periodSeconds }}
            failureThreshold: {{ .Values.probes.startup.failureThreshold }}
          livenessProbe:
            {{- if .Values.probes.liveness.deep }}
            # One text through every stage (elang.ops.health): Triton's own /v2/health/live stays 200
            # when a Python stub has died, and the 2.51 Python backend does not restart it.
            exec:
              command:
                - python3
                - -m
                - elang.ops.health
                - --url=127.0.0.1:{{ if .Values.frontDoor.enabled }}{{ .Values.frontDoor.tritonHttpPort }}{{ else }}{{ .Values.ports.http }}{{ end }}
                - --timeout={{ .Values.probes.liveness.checkTimeoutSeconds }}
                - --quiet
                {{- if .Values.probes.liveness.slowIsAlive }}
                - --slow-is-alive
                {{- end }}
                {{- if eq .Values.server.modelControlMode "explicit" }}
                # A dead stage is reloaded in place (the rest keeps serving); the probe fails, and
                # the kubelet restarts the pod, only when that reload does not heal it.
                - --reload-failing
                {{- end }}
            {{- if eq .Values.server.modelControlMode "explicit" }}
            # two checks and a reload (up to 120 s for a model's load)
            timeoutSeconds: {{ add (mul .Values.probes.liveness.checkTimeoutSeconds 2) 125 }}
            {{- else }}
            timeoutSeconds: {{ add .Values.probes.liveness.checkTimeoutSeconds 5 }}
            {{- end }}
            {{- else }}
            httpGet:
              path: /v2/health/live
              port: http
            {{- end }}
            periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
            failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
          readinessProbe:
            httpGet:
              path: /v2/health/ready
              port: http
            periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
            failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
          resources:
            {{- include "elang.resources" . | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: dshm
              mountPath: /dev/shm
            {{- if $prepare }}
            - name: prepared
              mountPath: /prepared
              readOnly: true
            {{- else if $local }}
            - name: model-repository
              mountPath: {{ .Values.modelRepository.mountPath }}
              readOnly: true
            {{- end }}
            {{- if and $direct $store.gcsCredentialsSecret }}
            - name: gcs-credentials
              mountPath: /var/run/secrets/elang-gcs
              readOnly: true
            {{- end }}
        {{- if .Values.frontDoor.enabled }}
        - name: front-door
          image: {{ .Values.frontDoor.image }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command: ["nginx", "-c", "/etc/elang-frontdoor/nginx.conf"]
          ports:
            - name: http
              containerPort: {{ .Values.ports.http }}
          resources:
            {{- toYaml .Values.frontDoor.resources | nindent 12 }}
          securityContext:
            {{- toYaml .Values.securityContext | nindent 12 }}
          volumeMounts:
            - name: frontdoor-tmp
              mountPath: /tmp
            - name: frontdoor-config
              mountPath: /etc/elang-frontdoor
              readOnly: true
        {{- end }}
      volumes:
        {{- if .Values.frontDoor.enabled }}
        - name: frontdoor-tmp
          emptyDir:
            sizeLimit: 256Mi
        - name: frontdoor-config
          configMap:
            name: {{ include "elang.fullname" . }}-frontdoor
        {{- end }}
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit }}
        - name: dshm
          emptyDir:
            medium: Memory
            sizeLimit: {{ .Values.sharedMemorySize }}
        {{- if eq .Values.modelRepository.source "pvc" }}
        - name: model-repository
          persistentVolumeClaim:
            claimName: {{ .Values.modelRepository.pvc.claimName }}
            readOnly: {{ .Values.modelRepository.pvc.readOnly }}
        {{- else if eq .Values.modelRepository.source "initContainer" }}
        - name: model-repository
          emptyDir:
            sizeLimit: {{ .Values.modelRepository.initContainer.sizeLimit }}
        {{- else if $fetch }}
        - name: model-repository
          emptyDir:
            sizeLimit: {{ $store.sizeLimit }}
        {{- end }}
        {{- if $prepare }}
        - name: prepared
          emptyDir:
            sizeLimit: {{ .Values.prepare.sizeLimit }}
        {{- end }}
        {{- if and (eq .Values.modelRepository.source "objectStore") $store.gcsCredentialsSecret }}
        - name: gcs-credentials
          secret:
            secretName: {{ $store.gcsCredentialsSecret }}
        {{- end }}
      {{- with .Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .Values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}
