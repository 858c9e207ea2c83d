{{- define "noetl.labels" -}}
app.kubernetes.io/part-of: noetl-mesh
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* One address per shard, in shard order, for the process listening on `port` in each shard pod. */}}
{{- define "noetl.shardAddrs" -}}
{{- $root := .root }}{{ $port := .port -}}
{{- range $i, $e := until (int $root.Values.shards.count) }}{{ if $i }},{{ end }}{{ $root.Release.Name }}-shard-{{ $i }}.{{ $root.Release.Name }}-shard:{{ $port }}{{- end }}
{{- end }}

{{/* Addresses of the services and the shard count every process reads. */}}
{{- define "noetl.wiring" -}}
- name: NOETL_PG_DSN
  valueFrom: {secretKeyRef: {name: {{ .Values.postgres.clusterDsnSecret }}, key: dsn}}
- name: NOETL_CLUSTER_PG_DSN
  valueFrom: {secretKeyRef: {name: {{ .Values.postgres.clusterDsnSecret }}, key: dsn}}
- name: NOETL_NATS_URL
  value: {{ .Values.natsUrl | quote }}
- name: NOETL_CATALOG_ADDR
  value: "{{ .Release.Name }}-catalog:{{ .Values.ports.grpc }}"
- name: NOETL_SECRETS_ADDR
  value: "{{ .Release.Name }}-secrets:{{ .Values.ports.grpc }}"
- name: NOETL_EXECUTION_ADDRS
  value: {{ include "noetl.shardAddrs" (dict "root" . "port" .Values.ports.execution) | quote }}
- name: NOETL_EVENTS_ADDRS
  value: {{ include "noetl.shardAddrs" (dict "root" . "port" .Values.ports.events) | quote }}
- name: NOETL_OUTBOX_ADDRS
  value: {{ include "noetl.shardAddrs" (dict "root" . "port" .Values.ports.outbox) | quote }}
- name: NOETL_SHARD_COUNT
  value: {{ .Values.shards.count | quote }}
- name: NOETL_EVENT_SHARD_COUNT
  value: {{ .Values.shards.count | quote }}
- name: NOETL_PUBLIC_SERVER_URL
  value: "http://{{ .Release.Name }}-gateway:{{ .Values.gateway.port }}"
{{- end }}

{{/* A stateless gRPC service: Deployment + Service, gRPC health probes. */}}
{{- define "noetl.grpcService" -}}
{{- $name := .name }}{{ $cfg := .cfg }}{{ $root := .root }}
{{- $probe := include "noetl.probePort" (dict "root" $root "port" $root.Values.ports.grpc "health" $root.Values.security.meshAuth.healthPort) }}
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
      labels: {app: {{ $root.Release.Name }}-{{ $name }}, app.kubernetes.io/component: {{ $name }}}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: {{ $root.Values.ports.metrics | quote }}}
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
            - {name: NOETL_GRPC_LISTEN, value: "0.0.0.0:{{ $root.Values.ports.grpc }}"}
            - {name: NOETL_METRICS_PORT, value: {{ $root.Values.ports.metrics | quote }}}
            {{- include "noetl.meshEnv" (dict "caller" $name "serves" true "root" $root "health" $root.Values.security.meshAuth.healthPort) | nindent 12 }}
            {{- with $cfg.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $root.Values.ports.grpc }}}
            - {name: metrics, containerPort: {{ $root.Values.ports.metrics }}}
          readinessProbe: {grpc: {port: {{ $probe }}}, periodSeconds: 5}
          livenessProbe: {grpc: {port: {{ $probe }}}, periodSeconds: 10, failureThreshold: 6}
          volumeMounts: {{- include "noetl.meshMounts" (dict "caller" $name "root" $root) | nindent 12 }}
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
    - {name: grpc, port: {{ $root.Values.ports.grpc }}, targetPort: grpc, appProtocol: grpc}
{{- end }}

{{/* One process of a shard pod: its database is the shard's, read from the mounted Secret by the
pod's ordinal (`<release>-shard-N`); it calls and is called as its component's caller (`execution`,
`events`, `outbox`), with that caller's mesh credentials. The execution process also reads the
shard's least-privilege `/api/postgres/execute` login when `security.postgresExecuteDsnSecret` is set. */}}
{{- define "noetl.shardContainer" -}}
{{- $name := .name }}{{ $root := .root }}{{ $port := .port }}{{ $metrics := .metrics }}
{{- $probe := include "noetl.probePort" (dict "root" $root "port" $port "health" .health) }}
{{- $sql := and (eq $name "execution") $root.Values.security.postgresExecuteDsnSecret }}
- name: {{ $name }}
  image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["/bin/sh", "-c"]
  args:
    {{- if $sql }}
    - 'NOETL_PG_DSN="$(cat /etc/noetl/shard-dsns/shard-${HOSTNAME##*-})" && NOETL_POSTGRES_EXECUTE_DSN="$(cat /etc/noetl/execute-dsns/shard-${HOSTNAME##*-})" && export NOETL_PG_DSN NOETL_POSTGRES_EXECUTE_DSN && exec python -m services.{{ $name }}'
    {{- else }}
    - 'NOETL_PG_DSN="$(cat /etc/noetl/shard-dsns/shard-${HOSTNAME##*-})" && export NOETL_PG_DSN && exec python -m services.{{ $name }}'
    {{- end }}
  env:
    {{- include "noetl.wiring" $root | nindent 4 }}
    - {name: NOETL_GRPC_LISTEN, value: "0.0.0.0:{{ $port }}"}
    - {name: NOETL_METRICS_PORT, value: {{ $metrics | quote }}}
    - {name: NOETL_SHARD_INDEX_FROM_HOSTNAME, value: "true"}
    {{- include "noetl.meshEnv" (dict "caller" $name "serves" true "root" $root "health" .health) | nindent 4 }}
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumeMounts:
    - {name: shard-dsns, mountPath: /etc/noetl/shard-dsns, readOnly: true}
    {{- if $sql }}
    - {name: execute-dsns, mountPath: /etc/noetl/execute-dsns, readOnly: true}
    {{- end }}
    {{- include "noetl.meshMounts" (dict "caller" $name "root" $root) | nindent 4 }}
  ports:
    - {name: {{ $name }}, containerPort: {{ $port }}}
    - {name: {{ $name }}-metrics, containerPort: {{ $metrics }}}
  readinessProbe: {grpc: {port: {{ $probe }}}, periodSeconds: 5}
  livenessProbe: {grpc: {port: {{ $probe }}}, periodSeconds: 10, failureThreshold: 6}
  resources: {{- toYaml .resources | nindent 4 }}
{{- end }}

{{/* Mesh auth of one process (docs/security.md): env, then volumes and mounts.
     Call with (dict "caller" <name> "serves" <bool> "root" $ "health" <mtls plaintext health port>),
     and "identity" when the process proves more than its caller (a worker pod: `worker:<pod>`). */}}
{{- define "noetl.meshEnv" -}}
{{- $auth := .root.Values.security.meshAuth }}
- {name: NOETL_MESH_AUTH, value: {{ $auth.mode | quote }}}
- {name: NOETL_MESH_IDENTITY, value: {{ .identity | default .caller | quote }}}
{{- if eq $auth.mode "token" }}
- {name: NOETL_MESH_TOKEN_FILE, value: /var/run/noetl/mesh-{{ .caller }}/token}
{{- if .serves }}
- {name: NOETL_MESH_TOKENS_FILE, value: /var/run/noetl/mesh-{{ .caller }}/tokens}
{{- end }}
{{- else if eq $auth.mode "mtls" }}
- {name: NOETL_MESH_TLS_CERT, value: /var/run/noetl/mesh-tls-{{ .caller }}/tls.crt}
- {name: NOETL_MESH_TLS_KEY, value: /var/run/noetl/mesh-tls-{{ .caller }}/tls.key}
- {name: NOETL_MESH_TLS_CA, value: /var/run/noetl/mesh-tls-{{ .caller }}/ca.crt}
{{- if .serves }}
- {name: NOETL_GRPC_HEALTH_LISTEN, value: "0.0.0.0:{{ .health }}"}
{{- end }}
{{- end }}
{{- end }}

{{/* Volume and mount names carry the caller: a shard pod holds three callers' credentials. */}}
{{- define "noetl.meshMounts" -}}
{{- $mode := .root.Values.security.meshAuth.mode }}
{{- if eq $mode "token" }}
- {name: mesh-auth-{{ .caller }}, mountPath: /var/run/noetl/mesh-{{ .caller }}, readOnly: true}
{{- else if eq $mode "mtls" }}
- {name: mesh-tls-{{ .caller }}, mountPath: /var/run/noetl/mesh-tls-{{ .caller }}, readOnly: true}
{{- end }}
{{- end }}

{{/* Secret volumes, never subPath mounts: the kubelet then updates rotated files in place. */}}
{{- define "noetl.meshVolumes" -}}
{{- $auth := .root.Values.security.meshAuth }}
{{- if eq $auth.mode "token" }}
- name: mesh-auth-{{ .caller }}
  secret:
    secretName: {{ $auth.tokenSecret }}
    defaultMode: 0440
    items:
      - {key: {{ .caller }}.token, path: token}
      {{- if .serves }}
      - {key: tokens, path: tokens}
      {{- end }}
{{- else if eq $auth.mode "mtls" }}
- name: mesh-tls-{{ .caller }}
  secret: {secretName: "{{ $auth.tlsSecretPrefix }}-{{ .caller }}", defaultMode: 0440}
{{- end }}
{{- end }}

{{/* The port kubelet gRPC probes use: the process's gRPC port, or its plaintext health port in
     mtls mode. Call with (dict "root" $ "port" <grpc port> "health" <health port>). */}}
{{- define "noetl.probePort" -}}
{{- if eq .root.Values.security.meshAuth.mode "mtls" }}{{ .health }}{{ else }}{{ .port }}{{ end }}
{{- end }}
