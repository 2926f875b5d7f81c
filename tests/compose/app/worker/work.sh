echo "worker: started"
exec sleep 3600
