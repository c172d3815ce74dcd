{{/*
Names. The cluster-scoped objects (webhook configuration, ClusterRoles) have
fixed names, so there is one release per cluster; the namespaced ones keep
the same names as the kustomize manifests.
*/}}
{{- define "psi.name" -}}pull-secret-injector{{- end }}
{{- define "psi.syncName" -}}pull-secret-injector-sync{{- end }}
{{- define "psi.tlsSecret" -}}
{{- if eq .Values.certificates.mode "existingSecret" -}}
{{- required "certificates.existingSecret.name is required with certificates.mode=existingSecret" .Values.certificates.existingSecret.name -}}
{{- else -}}
pull-secret-injector-tls
{{- end -}}
{{- end }}
{{- define "psi.policyConfigMap" -}}
{{- default "pull-secret-injector-policy" .Values.policy.existingConfigMap -}}
{{- end }}

{{/* Labels Helm adds to every object, next to the ones below. */}}
{{- define "psi.helmLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Object labels: the webhook's (and shared objects'), and the controller's. */}}
{{- define "psi.labels" -}}
app.kubernetes.io/name: pull-secret-injector
{{ include "psi.helmLabels" . }}
{{- end }}
{{- define "psi.syncLabels" -}}
app.kubernetes.io/name: pull-secret-injector
app.kubernetes.io/component: sync
{{ include "psi.helmLabels" . }}
{{- end }}

{{/* Pod labels and selectors (without Helm's labels: selectors are immutable). */}}
{{- define "psi.selectorLabels" -}}
app.kubernetes.io/name: pull-secret-injector
app.kubernetes.io/component: webhook
{{- end }}
{{- define "psi.syncSelectorLabels" -}}
app.kubernetes.io/name: pull-secret-injector
app.kubernetes.io/component: sync
{{- end }}

{{- define "psi.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end }}

{{/* The restricted Pod Security Standard, pod and container parts. */}}
{{- define "psi.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- define "psi.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
{{- end }}

{{/*
Spread constraints: each entry of .list, with a labelSelector for .selector
when it has none. Call with (dict "list" ... "selector" ...).
*/}}
{{- define "psi.spread" -}}
{{- range .list }}
{{- $c := deepCopy . }}
{{- if not (hasKey $c "labelSelector") }}
{{- $_ := set $c "labelSelector" (dict "matchLabels" $.selector) }}
{{- end }}
- {{ toYaml $c | nindent 2 | trim }}
{{- end }}
{{- end }}

{{/* The default anti-affinity: replicas on different nodes when possible. */}}
{{- define "psi.antiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- . | nindent 12 }}
{{- end }}

{{/*
The serving certificate of certificates.mode=generate, made once per render
and kept in the root context so the Secret and the webhook's caBundle agree.
The Secret already in the cluster is reused (so the caBundle stays the same
across upgrades) when it holds all three keys.
*/}}
{{- define "psi.generatedTLS" -}}
{{- if not (hasKey $.Values "psiGeneratedTLS") }}
{{- $secretName := "pull-secret-injector-tls" }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName }}
{{- $data := dict }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") (hasKey $existing.data "tls.crt") (hasKey $existing.data "tls.key") }}
{{- $data = dict "ca.crt" (index $existing.data "ca.crt") "tls.crt" (index $existing.data "tls.crt") "tls.key" (index $existing.data "tls.key") }}
{{- else }}
{{- $service := include "psi.name" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list $service (printf "%s.%s" $service $ns) (printf "%s.%s.svc" $service $ns) (printf "%s.%s.svc.cluster.local" $service $ns) }}
{{- $days := int .Values.certificates.generate.validityDays }}
{{- $ca := genCAWithKey "pull-secret-injector CA" $days (genPrivateKey "ecdsa") }}
{{- $cert := genSignedCertWithKey (printf "%s.%s.svc" $service $ns) nil $hosts $days $ca (genPrivateKey "ecdsa") }}
{{- $data = dict "ca.crt" ($ca.Cert | b64enc) "tls.crt" ($cert.Cert | b64enc) "tls.key" ($cert.Key | b64enc) }}
{{- end }}
{{- $_ := set $.Values "psiGeneratedTLS" $data }}
{{- end }}
{{- end }}

{{/* The caBundle for the webhook configuration, or nothing with cert-manager. */}}
{{- define "psi.caBundle" -}}
{{- if eq .Values.certificates.mode "generate" }}
{{- include "psi.generatedTLS" . }}
{{- index $.Values.psiGeneratedTLS "ca.crt" }}
{{- else if eq .Values.certificates.mode "existingSecret" }}
{{- if .Values.certificates.existingSecret.caBundle }}
{{- .Values.certificates.existingSecret.caBundle }}
{{- else }}
{{- $name := include "psi.tlsSecret" . }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $name }}
{{- if and $existing $existing.data (hasKey $existing.data "ca.crt") }}
{{- index $existing.data "ca.crt" }}
{{- else }}
{{- fail (printf "certificates.existingSecret.caBundle is empty and the Secret %s/%s with a ca.crt key cannot be read (it does not exist yet, or this is `helm template`): set certificates.existingSecret.caBundle to the base64 PEM of the CA" .Release.Namespace $name) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* `--metrics-listen` when the port is not the binary's default. */}}
{{- define "psi.metricsArgs" -}}
{{- if ne (int .Values.metrics.port) 9090 }}
- --metrics-listen
- {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
{{- end }}
{{- end }}
