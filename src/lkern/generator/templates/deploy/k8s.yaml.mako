# ${name}: REST ${port}${f", gRPC {grpc_port}" if grpc else ""} (${code}, written by lkern new-service).
apiVersion: v1
kind: ConfigMap
metadata:
  name: lkern-${name}
  labels:
    app.kubernetes.io/name: lkern-${name}
% if files:
data:
  LKERN_STORAGE_URL: s3://lkern-${name}?region=us-east-1
% else:
data: {}
% endif
---
apiVersion: v1
kind: Service
metadata:
  name: lkern-${name}
  labels:
    app.kubernetes.io/name: lkern-${name}
spec:
  selector:
    app.kubernetes.io/name: lkern-${name}
    app.kubernetes.io/component: server
  ports:
    - name: http
      port: ${port}
      targetPort: http
% if grpc:
    - name: grpc
      port: ${grpc_port}
      targetPort: grpc
% endif
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: lkern-${name}
  labels:
    app.kubernetes.io/name: lkern-${name}
    app.kubernetes.io/component: server
spec:
  replicas: 2
  selector:
    matchLabels:
      app.kubernetes.io/name: lkern-${name}
      app.kubernetes.io/component: server
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/name: lkern-${name}
        app.kubernetes.io/component: server
    spec:
      # Longer than the preStop pause plus LKERN_SHUTDOWN_GRACE_SECONDS, so in-flight
      # requests, the relay and the consumers finish before the kubelet kills the pod.
      terminationGracePeriodSeconds: 30
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: ${name}
          image: lkern
          args: ["serve", "${name}"]
          ports:
            - name: http
              containerPort: ${port}
% if grpc:
            - name: grpc
              containerPort: ${grpc_port}
% endif
          envFrom:
            - configMapRef:
                name: lkern-config
            - configMapRef:
                name: lkern-${name}
          env:
            - name: LKERN_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: lkern-${name}
                  key: database-url
            - name: LKERN_SERVICE_SECRET
              valueFrom:
                secretKeyRef:
                  name: lkern-shared
                  key: service-secret
            - name: LKERN_REDIS_URL
              valueFrom:
                secretKeyRef:
                  name: lkern-shared
                  key: redis-url
                  optional: true
% if files:
            - name: AWS_ACCESS_KEY_ID
              valueFrom:
                secretKeyRef:
                  name: lkern-${name}
                  key: s3-access-key
            - name: AWS_SECRET_ACCESS_KEY
              valueFrom:
                secretKeyRef:
                  name: lkern-${name}
                  key: s3-secret-key
% endif
          startupProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 2
            failureThreshold: 30
          readinessProbe:
            httpGet:
              path: /health/ready
              port: http
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          livenessProbe:
            httpGet:
              path: /health
              port: http
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          lifecycle:
            preStop:
              # Endpoints are removed asynchronously: keep serving while load balancers catch up.
              exec:
                command: ["sleep", "5"]
          resources:
            requests:
              cpu: 100m
              memory: 256Mi
            limits:
              memory: 512Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: data
              mountPath: /var/lib/lkern
            - name: tmp
              mountPath: /tmp
      volumes:
        # The data directory (runtime_config.json) and /tmp: the root filesystem is read-only.
        - name: data
          emptyDir: {}
        - name: tmp
          emptyDir: {}
---
# Brings ${name}'s database to head; apply it and wait for it before the Deployment
# rolls out (README.md, "Deploying"). Deleted an hour after it finishes, so the next
# apply of a new image runs it again.
apiVersion: batch/v1
kind: Job
metadata:
  name: lkern-${name}-migrate
  labels:
    app.kubernetes.io/name: lkern-${name}
    app.kubernetes.io/component: migration
spec:
  backoffLimit: 6
  ttlSecondsAfterFinished: 3600
  template:
    metadata:
      labels:
        app.kubernetes.io/name: lkern-${name}
        app.kubernetes.io/component: migration
    spec:
      restartPolicy: Never
      securityContext:
        runAsNonRoot: true
        runAsUser: 10001
        runAsGroup: 10001
        fsGroup: 10001
        seccompProfile:
          type: RuntimeDefault
      containers:
        - name: migrate
          image: lkern
          args: ["migrate", "${name}", "upgrade"]
          envFrom:
            - configMapRef:
                name: lkern-config
          env:
            - name: LKERN_DATABASE_URL
              valueFrom:
                secretKeyRef:
                  name: lkern-${name}
                  key: database-url
          resources:
            requests:
              cpu: 100m
              memory: 256Mi
            limits:
              memory: 512Mi
          securityContext:
            allowPrivilegeEscalation: false
            readOnlyRootFilesystem: true
            capabilities:
              drop: [ALL]
          volumeMounts:
            - name: data
              mountPath: /var/lib/lkern
            - name: tmp
              mountPath: /tmp
      volumes:
        # The data directory (runtime_config.json) and /tmp: the root filesystem is read-only.
        - name: data
          emptyDir: {}
        - name: tmp
          emptyDir: {}
