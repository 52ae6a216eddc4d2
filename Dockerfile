FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY controlplane ./controlplane
COPY sql ./sql
COPY policies ./policies
# Editable: the service reads sql/ and policies/templates/ beside the package.
RUN pip install --no-cache-dir -e .
ENV CARACAL_HOST=0.0.0.0 CARACAL_PORT=3000 CARACAL_DATA_DIR=/data
EXPOSE 3000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:3000/health').status == 200 else 1)"
CMD ["python", "-m", "controlplane", "serve"]
