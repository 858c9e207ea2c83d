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
      containers:
        - name: {{ $name }}
          image: "{{ $root.Values.image.repository }}:{{ $root.Values.image.tag }}"
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args: ["services.{{ $name }}"]
          env:
            {{- include "noetl.wiring" $root | nindent 12 }}
            {{- with $cfg.env }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - {name: grpc, containerPort: {{ $root.Values.grpcPort }}}
            - {name: metrics, containerPort: {{ $root.Values.metricsPort }}}
          readinessProbe: {grpc: {port: {{ $root.Values.grpcPort }}}, periodSeconds: 5}
          livenessProbe: {grpc: {port: {{ $root.Values.grpcPort }}}, periodSeconds: 10}
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
    - {name: grpc, port: {{ $root.Values.grpcPort }}, targetPort: grpc, appProtocol: grpc}
{{- end }}
