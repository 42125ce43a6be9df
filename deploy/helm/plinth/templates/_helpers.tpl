{{/* Names and labels, as `helm create` makes them. */}}
{{- define "plinth.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "plinth.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "plinth.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "plinth.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "plinth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "plinth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "plinth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "plinth.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "plinth.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding PLINTH_DATABASE_URL: the user's, or the chart's own. */}}
{{- define "plinth.databaseSecret" -}}
{{- default (include "plinth.fullname" .) .Values.database.existingSecret }}
{{- end }}

{{- define "plinth.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}database-url{{ end }}
{{- end }}

{{- define "plinth.tokensSecret" -}}
{{- default (include "plinth.fullname" .) .Values.tokens.existingSecret }}
{{- end }}

{{- define "plinth.tokensSecretKey" -}}
{{- if .Values.tokens.existingSecret }}{{ .Values.tokens.existingSecretKey }}{{ else }}tokens{{ end }}
{{- end }}

{{/*
Refuse values that cannot work, with the reason, at `helm install` time instead of as a
crash-looping pod.
*/}}
{{- define "plinth.validate" -}}
{{- if not (or .Values.database.url .Values.database.existingSecret) }}
{{- fail "plinth: set database.url (postgresql+psycopg://user:password@host:5432/db) or database.existingSecret: replicas share PostgreSQL; SQLite is for one process (run the image alone, see docs/deploy.md)" }}
{{- end }}
{{- if and .Values.database.url (not (hasPrefix "postgres" .Values.database.url)) }}
{{- fail "plinth: database.url must be a PostgreSQL URL (postgresql+psycopg://...): SQLite cannot be shared by replicas" }}
{{- end }}
{{- $replicas := ternary .Values.autoscaling.maxReplicas .Values.replicaCount .Values.autoscaling.enabled }}
{{- if and (gt (int $replicas) 1) (not .Values.persistence.enabled) }}
{{- fail "plinth: more than one replica needs persistence.enabled: every replica reads the model artifacts under PLINTH_HOME from one shared (ReadWriteMany) volume" }}
{{- end }}
{{- if and (gt (int $replicas) 1) .Values.persistence.enabled (not .Values.persistence.existingClaim) (not (has "ReadWriteMany" .Values.persistence.accessModes)) }}
{{- fail "plinth: more than one replica needs persistence.accessModes to include ReadWriteMany (or an existingClaim that is): replicas on different nodes share the artifacts volume" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "plinth: autoscaling.minReplicas is above autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* The environment of every Plinth container (server and migration Job). */}}
{{- define "plinth.env" -}}
- name: PLINTH_HOME
  value: /var/lib/plinth
- name: PLINTH_POLICY_FILE
  value: /etc/plinth/plinth.toml
- name: PLINTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "plinth.databaseSecret" . }}
      key: {{ include "plinth.databaseSecretKey" . }}
{{- if or .Values.tokens.value .Values.tokens.existingSecret }}
- name: PLINTH_TOKENS
  valueFrom:
    secretKeyRef:
      name: {{ include "plinth.tokensSecret" . }}
      key: {{ include "plinth.tokensSecretKey" . }}
{{- end }}
{{- range $name, $value := .Values.env }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/*
The pod of a one-off Plinth command (migration, retention): the server's image, settings,
security context and config, no artifacts volume (neither command reads artifacts).
Call with (dict "root" $ "name" "migrate" "args" (list "models")).
*/}}
{{- define "plinth.commandPod" -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "plinth.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .name }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "plinth.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $root.Values.podSecurityContext | nindent 4 }}
  containers:
    - name: {{ .name }}
      image: {{ include "plinth.image" $root | quote }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        {{- include "plinth.env" $root | nindent 8 }}
      resources:
        {{- toYaml $root.Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml $root.Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: home
          mountPath: /var/lib/plinth
        - name: tmp
          mountPath: /tmp
        - name: config
          mountPath: /etc/plinth
          readOnly: true
  volumes:
    # Everything these commands touch lives in PostgreSQL.
    - name: home
      emptyDir: {}
    - name: tmp
      emptyDir:
        sizeLimit: {{ $root.Values.tmpSizeLimit }}
    - name: config
      configMap:
        name: {{ include "plinth.fullname" $root }}
  {{- with $root.Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $root.Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
