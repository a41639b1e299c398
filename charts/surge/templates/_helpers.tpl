{{/* Full name of the release's objects. */}}
{{- define "surge.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "surge.labels" -}}
app.kubernetes.io/name: surge-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "surge.selectorLabels" -}}
app.kubernetes.io/name: surge-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "surge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "surge.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* cpu=250m,memory=128Mi from a map. */}}
{{- define "surge.keyValues" -}}
{{- $out := list -}}
{{- range $k, $v := . -}}
{{- $out = append $out (printf "%s=%v" $k $v) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{- define "surge.leaseName" -}}
{{- include "surge.fullname" . -}}
{{- end -}}

{{/* regcred,other from a list of names or of {name: ...} objects. */}}
{{- define "surge.secretNames" -}}
{{- $out := list -}}
{{- range . -}}
{{- if kindIs "string" . -}}
{{- $out = append $out . -}}
{{- else -}}
{{- $out = append $out .name -}}
{{- end -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}
