# The hotline service image, built by docker-compose.yml (service "hotline").
# Only the package is copied in; the configuration is mounted at run time
# (./config/hotline.toml -> /etc/hotline/hotline.toml) and secrets come from
# the environment or /run/secrets, so one image serves every site.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# An unprivileged user owns nothing but its state directory.
RUN useradd --system --uid 10001 --user-group --no-create-home \
        --home-dir /var/lib/hotline --shell /usr/sbin/nologin hotline \
    && install -d -o hotline -g hotline -m 0750 /var/lib/hotline

WORKDIR /usr/src/hotline
COPY pyproject.toml README.md ./
COPY hotline ./hotline
# Dependencies all ship wheels for CPython 3.11 on Linux, so no compiler is
# needed; the source tree is removed once the package is installed. The SQL
# migrations are package data (hotline/migrations), installed with it.
RUN pip install . \
    && rm -rf /usr/src/hotline

WORKDIR /var/lib/hotline
USER hotline

# 8080: HTTP (API, agent and supervisor panels, /metrics); 4573: FastAGI.
EXPOSE 8080 4573

CMD ["hotline", "serve", "--config", "/etc/hotline/hotline.toml"]
