# file: tutorials/seed_parallel.py
# The same model, with the parallel run made visible: python seed_parallel.py TRACE [dense]
import sys

from minipar import keras

trace = sys.argv[1]
sparse = "dense" not in sys.argv[2:]
(X_train, y_train), (X_val, y_val) = keras.datasets.sentiment.load_data(num_words=1000)
X_train = keras.utils.pad_sequences(X_train, maxlen=40)
X_val = keras.utils.pad_sequences(X_val, maxlen=40)

model = keras.Sequential([
    keras.layers.Embedding(input_dim=1000, output_dim=64),
    keras.layers.LSTM(64),
    keras.layers.Dense(1, activation='sigmoid')
])
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'],
              distribute=keras.Distribute(allreduce='ring', sparse=sparse, trace=trace))
model.fit(X_train, y_train, batch_size=32, epochs=2, validation_data=(X_val, y_val),
          verbose=2)
