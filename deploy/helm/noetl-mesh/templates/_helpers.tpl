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
      containers:
        - name: {{ $name }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["services.{{ $name }}"]
          env:
            {{- include "noetl.wiring" $root | nindent 12 }}
            - {name: NOETL_GRPC_LISTEN, value: "0.0.0.0:{{ $root.Values.ports.grpc }}"}
            - {name: NOETL_METRICS_PORT, value: {{ $root.Values.ports.metrics | quote }}}
            {{- with $cfg.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $root.Values.ports.grpc }}}
            - {name: metrics, containerPort: {{ $root.Values.ports.metrics }}}
          readinessProbe: {grpc: {port: {{ $root.Values.ports.grpc }}}, periodSeconds: 5}
          livenessProbe: {grpc: {port: {{ $root.Values.ports.grpc }}}, periodSeconds: 10, failureThreshold: 6}
          resources: {{- toYaml $cfg.resources | nindent 12 }}
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
pod's ordinal (`<release>-shard-N`). */}}
{{- define "noetl.shardContainer" -}}
{{- $name := .name }}{{ $root := .root }}{{ $port := .port }}{{ $metrics := .metrics }}
- name: {{ $name }}
  image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
  imagePullPolicy: {{ $root.Values.image.pullPolicy }}
  command: ["/bin/sh", "-c"]
  args:
    - 'NOETL_PG_DSN="$(cat /etc/noetl/shard-dsns/shard-${HOSTNAME##*-})" && export NOETL_PG_DSN && exec python -m services.{{ $name }}'
  env:
    {{- include "noetl.wiring" $root | nindent 4 }}
    - {name: NOETL_GRPC_LISTEN, value: "0.0.0.0:{{ $port }}"}
    - {name: NOETL_METRICS_PORT, value: {{ $metrics | quote }}}
    - {name: NOETL_SHARD_INDEX_FROM_HOSTNAME, value: "true"}
    {{- with .env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumeMounts:
    - {name: shard-dsns, mountPath: /etc/noetl/shard-dsns, readOnly: true}
  ports:
    - {name: {{ $name }}, containerPort: {{ $port }}}
    - {name: {{ $name }}-metrics, containerPort: {{ $metrics }}}
  readinessProbe: {grpc: {port: {{ $port }}}, periodSeconds: 5}
  livenessProbe: {grpc: {port: {{ $port }}}, periodSeconds: 10, failureThreshold: 6}
  resources: {{- toYaml .resources | nindent 4 }}
{{- end }}
