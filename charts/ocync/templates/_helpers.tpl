{{- define "ocync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ocync.fullname" -}}
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

{{- define "ocync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ocync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "ocync.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ocync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "ocync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ocync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ocync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "ocync.cacheClaim" -}}
{{- default (printf "%s-cache" (include "ocync.fullname" .)) .Values.cache.persistence.existingClaim }}
{{- end }}

{{- /* The config as ocync reads it: the user's config with global.cache_dir on the cache volume. */}}
{{- define "ocync.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $global := default dict (get $config "global") }}
{{- $_ := set $global "cache_dir" .Values.cache.mountPath }}
{{- $_ := set $config "global" $global }}
{{- toYaml $config }}
{{- end }}

{{- define "ocync.shards" -}}
{{- if eq .Values.mode "watch" }}1{{ else }}{{ int .Values.shards }}{{ end }}
{{- end }}

{{- /* The container's args (the image's ENTRYPOINT is ocync). */}}
{{- define "ocync.args" -}}
{{- $shards := int (include "ocync.shards" .) }}
{{- $args := list }}
{{- if eq .Values.mode "watch" }}
{{- $args = list "watch" "-c" (printf "%s/ocync.yaml" .Values.configDir) "--health-port" (toString .Values.watch.healthPort) "--health-bind" "0.0.0.0" }}
{{- if .Values.watch.schedule }}
{{- $args = concat $args (list "--schedule" .Values.watch.schedule) }}
{{- else }}
{{- $args = concat $args (list "--interval" (toString .Values.watch.interval)) }}
{{- end }}
{{- else }}
{{- $args = list "sync" "-c" (printf "%s/ocync.yaml" .Values.configDir) }}
{{- end }}
{{- if and (eq .Values.mode "watch") .Values.logFormat }}
{{- $args = concat $args (list "--log-format" .Values.logFormat) }}
{{- end }}
{{- $args = concat $args (list "--drain-timeout" (toString .Values.drainTimeout)) }}
{{- if gt $shards 1 }}
{{- $args = concat $args (list "--shard" (printf "$(JOB_COMPLETION_INDEX)/%d" $shards)) }}
{{- if eq (toString .Values.rateShare) "auto" }}
{{- $args = concat $args (list "--rate-share" (printf "%.6f" (divf 1 $shards))) }}
{{- end }}
{{- end }}
{{- if and .Values.rateShare (ne (toString .Values.rateShare) "auto") }}
{{- $args = concat $args (list "--rate-share" (toString .Values.rateShare)) }}
{{- end }}
{{- toYaml (concat $args .Values.extraArgs) }}
{{- end }}

{{- /* The pod spec every mode shares. */}}
{{- define "ocync.podTemplate" -}}
metadata:
  labels:
    {{- include "ocync.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    checksum/config: {{ include "ocync.config" . | sha256sum }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "ocync.serviceAccountName" . }}
  automountServiceAccountToken: {{ .Values.serviceAccount.automountServiceAccountToken }}
  {{- if ne .Values.mode "watch" }}
  restartPolicy: {{ if gt (int (include "ocync.shards" .)) 1 }}Never{{ else }}OnFailure{{ end }}
  {{- end }}
  {{- /* SIGTERM drains for drainTimeout seconds; the kubelet must wait longer than that. */}}
  terminationGracePeriodSeconds: {{ add (int .Values.drainTimeout) (int .Values.graceMargin) }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: ocync
      image: {{ include "ocync.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        {{- include "ocync.args" . | nindent 8 }}
      {{- if or .Values.env (gt (int (include "ocync.shards" .)) 1) }}
      env:
        {{- if gt (int (include "ocync.shards" .)) 1 }}
        # set by the Job controller for Indexed Jobs; declared so $(JOB_COMPLETION_INDEX) expands
        - name: JOB_COMPLETION_INDEX
          valueFrom:
            fieldRef:
              fieldPath: metadata.annotations['batch.kubernetes.io/job-completion-index']
        {{- end }}
        {{- with .Values.env }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- end }}
      {{- with .Values.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- if eq .Values.mode "watch" }}
      ports:
        - name: http
          containerPort: {{ .Values.watch.healthPort }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.watch.probes.liveness | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.watch.probes.readiness | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        - name: config
          mountPath: {{ .Values.configDir }}
          readOnly: true
        - name: cache
          mountPath: {{ .Values.cache.mountPath }}
        - name: tmp
          mountPath: /tmp
        {{- if .Values.secretProviderClass.enabled }}
        - name: secrets-store
          mountPath: {{ .Values.secretProviderClass.mountPath }}
          readOnly: true
        {{- end }}
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ include "ocync.fullname" . }}
    - name: cache
      {{- if .Values.cache.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "ocync.cacheClaim" . }}
      {{- else }}
      emptyDir:
        {{- with .Values.cache.emptyDir.medium }}
        medium: {{ . }}
        {{- end }}
        {{- with .Values.cache.emptyDir.sizeLimit }}
        sizeLimit: {{ . }}
        {{- end }}
      {{- end }}
    - name: tmp
      emptyDir: {}
    {{- if .Values.secretProviderClass.enabled }}
    - name: secrets-store
      csi:
        driver: secrets-store.csi.k8s.io
        readOnly: true
        volumeAttributes:
          secretProviderClass: {{ include "ocync.fullname" . }}
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{- /* The Job spec shared by mode job and the CronJob's jobTemplate. */}}
{{- define "ocync.jobSpec" -}}
{{- $shards := int (include "ocync.shards" .) }}
backoffLimit: {{ .Values.job.backoffLimit }}
{{- with .Values.job.activeDeadlineSeconds }}
activeDeadlineSeconds: {{ . }}
{{- end }}
{{- if ne (toString .Values.job.ttlSecondsAfterFinished) "<nil>" }}
ttlSecondsAfterFinished: {{ .Values.job.ttlSecondsAfterFinished }}
{{- end }}
{{- if gt $shards 1 }}
completionMode: Indexed
completions: {{ $shards }}
parallelism: {{ $shards }}
{{- end }}
template:
  {{- include "ocync.podTemplate" . | nindent 2 }}
{{- end }}
