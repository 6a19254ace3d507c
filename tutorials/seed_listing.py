# file: tutorials/seed_listing.py
# The design document's program on minipar: only the import line differs.
import minipar as tf

(X_train, y_train), (X_val, y_val) = tf.keras.datasets.sentiment.load_data(num_words=1000)
X_train = tf.keras.utils.pad_sequences(X_train, maxlen=40)
X_val = tf.keras.utils.pad_sequences(X_val, maxlen=40)

model = tf.keras.Sequential([
    tf.keras.layers.Embedding(input_dim=1000, output_dim=64),
    tf.keras.layers.LSTM(64),
    tf.keras.layers.Dense(1, activation='sigmoid')
])
model.compile(optimizer='adam', loss='binary_crossentropy', metrics=['accuracy'])
model.fit(X_train, y_train, batch_size=32, epochs=10, validation_data=(X_val, y_val))
