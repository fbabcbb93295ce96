# The image of kubernetes/raycluster.yaml and rayjob.yaml: Ray's own image of the pinned Ray (Python 3.11, CUDA),
# with tune-digits installed as cluster.yaml's setup does it (pinned by constraints.txt; the dashboard and job
# server come with Ray's image). `docker build -t tune-digits:0.1.0 .`
FROM rayproject/ray:2.60.0-py311-gpu
WORKDIR /home/ray/tune-digits
COPY --chown=ray:users pyproject.toml constraints.txt README.md ./
COPY --chown=ray:users tune_digits tune_digits
COPY --chown=ray:users search_spaces search_spaces
RUN pip install -q --no-cache-dir --disable-pip-version-check -c constraints.txt -e '.[cluster]'
