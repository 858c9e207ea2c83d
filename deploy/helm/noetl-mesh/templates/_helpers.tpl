{{- define "noetl.labels" -}}
app.kubernetes.io/part-of: noetl-mesh
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Addresses of the services; execution lists one address per shard, in shard order. */}}
{{- define "noetl.wiring" -}}
- name: NOETL_PG_DSN
  valueFrom: {secretKeyRef: {name: {{ .Values.postgres.dsnSecret }}, key: dsn}}
- name: NOETL_NATS_URL
  value: {{ .Values.natsUrl | quote }}
- name: NOETL_CATALOG_ADDR
  value: "{{ .Release.Name }}-catalog:{{ .Values.grpcPort }}"
- name: NOETL_EVENTS_ADDRS
  value: "{{ .Release.Name }}-events:{{ .Values.grpcPort }}"
- name: NOETL_OUTBOX_ADDR
  value: "{{ .Release.Name }}-outbox:{{ .Values.grpcPort }}"
- name: NOETL_SECRETS_ADDR
  value: "{{ .Release.Name }}-secrets:{{ .Values.grpcPort }}"
- name: NOETL_EXECUTION_ADDRS
  value: "{{- range $i, $e := until (int .Values.execution.shards) }}{{ if $i }},{{ end }}{{ $.Release.Name }}-execution-{{ $i }}.{{ $.Release.Name }}-execution:{{ $.Values.grpcPort }}{{- end }}"
- name: NOETL_GRPC_LISTEN
  value: "0.0.0.0:{{ .Values.grpcPort }}"
- name: NOETL_METRICS_PORT
  value: {{ .Values.metricsPort | quote }}
- name: NOETL_PUBLIC_SERVER_URL
  value: "http://{{ .Release.Name }}-gateway:{{ .Values.gateway.port }}"
{{- end }}

{{/* A stateless gRPC service: Deployment + Service, gRPC health probes. */}}
{{- define "noetl.grpcService" -}}
{{- $name := .name }}{{ $cfg := .cfg }}{{ $root := .root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $root.Release.Name }}-{{ $name }}
  labels: {{- include "noetl.labels" $root | nindent 4 }}
spec:
  replicas: {{ $cfg.replicas }}
  selector: {matchLabels: {app: {{ $root.Release.Name }}-{{ $name }}}}
  template:
    metadata:
      labels: {app: {{ $root.Release.Name }}-{{ $name }}}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: {{ $root.Values.metricsPort | quote }}}
    spec:
      terminationGracePeriodSeconds: 30
      # The image runs as 65532: mounted Secret files (mesh credentials) are group-readable by it.
      securityContext: {runAsNonRoot: true, runAsUser: 65532, fsGroup: 65532}
      containers:
        - name: {{ $name }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["services.{{ $name }}"]
          env:
            {{- include "noetl.wiring" $root | nindent 12 }}
            {{- include "noetl.meshEnv" (dict "caller" $name "serves" true "root" $root) | nindent 12 }}
            {{- with $cfg.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $root.Values.grpcPort }}}
            - {name: metrics, containerPort: {{ $root.Values.metricsPort }}}
          readinessProbe: {grpc: {port: {{ include "noetl.probePort" $root }}}, periodSeconds: 5}
          livenessProbe: {grpc: {port: {{ include "noetl.probePort" $root }}}, periodSeconds: 10}
          volumeMounts: {{- include "noetl.meshMounts" (dict "root" $root) | nindent 12 }}
          resources: {{- toYaml $cfg.resources | nindent 12 }}
      volumes: {{- include "noetl.meshVolumes" (dict "caller" $name "serves" true "root" $root) | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $root.Release.Name }}-{{ $name }}
  labels: {{- include "noetl.labels" $root | nindent 4 }}
spec:
  selector: {app: {{ $root.Release.Name }}-{{ $name }}}
  ports:
    - {name: grpc, port: {{ $root.Values.grpcPort }}, targetPort: grpc, appProtocol: grpc}
{{- end }}

{{/* Mesh auth of one process (docs/security.md): env, then volumes and mounts.
     Call with (dict "caller" <name> "serves" <bool> "root" $). */}}
{{- define "noetl.meshEnv" -}}
{{- $auth := .root.Values.security.meshAuth }}
- {name: NOETL_MESH_AUTH, value: {{ $auth.mode | quote }}}
- {name: NOETL_MESH_IDENTITY, value: {{ .caller | quote }}}
{{- if eq $auth.mode "token" }}
- {name: NOETL_MESH_TOKEN_FILE, value: /var/run/noetl/mesh/token}
{{- if .serves }}
- {name: NOETL_MESH_TOKENS_FILE, value: /var/run/noetl/mesh/tokens}
{{- end }}
{{- else if eq $auth.mode "mtls" }}
- {name: NOETL_MESH_TLS_CERT, value: /var/run/noetl/mesh-tls/tls.crt}
- {name: NOETL_MESH_TLS_KEY, value: /var/run/noetl/mesh-tls/tls.key}
- {name: NOETL_MESH_TLS_CA, value: /var/run/noetl/mesh-tls/ca.crt}
{{- if .serves }}
- {name: NOETL_GRPC_HEALTH_LISTEN, value: "0.0.0.0:{{ $auth.healthPort }}"}
{{- end }}
{{- end }}
{{- end }}

{{- define "noetl.meshMounts" -}}
{{- $mode := .root.Values.security.meshAuth.mode }}
{{- if eq $mode "token" }}
- {name: mesh-auth, mountPath: /var/run/noetl/mesh, readOnly: true}
{{- else if eq $mode "mtls" }}
- {name: mesh-tls, mountPath: /var/run/noetl/mesh-tls, readOnly: true}
{{- end }}
{{- end }}

{{/* Secret volumes, never subPath mounts: the kubelet then updates rotated files in place. */}}
{{- define "noetl.meshVolumes" -}}
{{- $auth := .root.Values.security.meshAuth }}
{{- if eq $auth.mode "token" }}
- name: mesh-auth
  secret:
    secretName: {{ $auth.tokenSecret }}
    defaultMode: 0440
    items:
      - {key: {{ .caller }}.token, path: token}
      {{- if .serves }}
      - {key: tokens, path: tokens}
      {{- end }}
{{- else if eq $auth.mode "mtls" }}
- name: mesh-tls
  secret: {secretName: "{{ $auth.tlsSecretPrefix }}-{{ .caller }}", defaultMode: 0440}
{{- end }}
{{- end }}

{{/* The port kubelet gRPC probes use: the plaintext health port in mtls mode. */}}
{{- define "noetl.probePort" -}}
{{- if eq .Values.security.meshAuth.mode "mtls" }}{{ .Values.security.meshAuth.healthPort }}{{ else }}{{ .Values.grpcPort }}{{ end }}
{{- end }}
